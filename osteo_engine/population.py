"""Is the person on the radiograph someone the screening model was made for?

A screening model's card states its population (`Population`: who it is meant for, by age). The person's age
comes from the file (DICOM PatientAge, or PatientBirthDate with StudyDate) or from the user, and the answer is
`refer` for someone outside the population, with a reason that names their age and the model's population.
An unknown age is said, never guessed. Only the age in years, the sex and where they came from are kept:
never the birth date, which with a name identifies a patient.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from datetime import date

from .errors import ConfigError

AGE_UNITS = {"D": 1 / 365.25, "W": 7 / 365.25, "M": 1 / 12, "Y": 1.0}  # DICOM AS value units, in years
SEXES = ("F", "M")


@dataclass(frozen=True)
class Population:
    """Who a screening model is meant for. Cards that state none are taken to mean adults."""

    description: str = "adults"
    min_age_years: float | None = 18.0
    max_age_years: float | None = None

    @staticmethod
    def from_card(fields: dict | None) -> Population:
        """From a card's `population` object; raises ConfigError for one that is not a valid population."""
        if not fields:
            return Population()
        try:
            population = Population(**fields)
        except TypeError as exc:
            raise ConfigError(f"the model card's population is not understood ({exc}).") from exc
        for bound in (population.min_age_years, population.max_age_years):
            if bound is not None and not (isinstance(bound, int | float) and 0 <= bound <= 150):
                raise ConfigError(f"the model card's population has an age bound {bound!r} outside 0–150 years.")
        return population

    def describe(self) -> str:
        low, high = self.min_age_years, self.max_age_years
        ages = (
            f"{low:g} to {high:g} years"
            if low is not None and high is not None
            else f"{low:g} years and over"
            if low is not None
            else f"up to {high:g} years"
            if high is not None
            else "any age"
        )
        return f"{self.description}, {ages}"


@dataclass(frozen=True)
class Demographics:
    age_years: float | None = None
    sex: str | None = None  # "F", "M" or None
    age_source: str = "unknown"  # "DICOM PatientAge", "DICOM birth and study dates", "given" or "unknown"

    def with_given(self, age_years: float | None = None, sex: str | None = None) -> Demographics:
        """These demographics with what the user gave put first. Raises ConfigError for an impossible value."""
        if age_years is not None and not 0 <= age_years <= 150:
            raise ConfigError(f"an age of {age_years:g} years is not possible; give years from 0 to 150.")
        if sex is not None and sex.upper() not in SEXES:
            raise ConfigError(f"sex must be F or M, not {sex!r}.")
        return Demographics(
            age_years if age_years is not None else self.age_years,
            sex.upper() if sex is not None else self.sex,
            "given" if age_years is not None else self.age_source,
        )


@dataclass(frozen=True)
class PopulationCheck:
    within: bool | None  # None when the age is unknown
    age_years: float | None
    age_source: str
    sex: str | None
    population: str  # the model's population, described
    note: str  # one sentence for the reader

    def to_json(self) -> dict:
        out = asdict(self)
        out["age_years"] = None if self.age_years is None else round(self.age_years, 1)
        return out


def demographics_from_dicom(dataset) -> Demographics:
    """Age, sex and where the age came from, from a pydicom dataset. Unreadable values count as unknown."""
    sex = str(dataset.get("PatientSex", "") or "").strip().upper()
    age = parse_dicom_age(str(dataset.get("PatientAge", "") or ""))
    source = "DICOM PatientAge"
    if age is None:
        age = age_between(str(dataset.get("PatientBirthDate", "") or ""), str(dataset.get("StudyDate", "") or ""))
        source = "DICOM birth and study dates"
    return Demographics(age, sex if sex in SEXES else None, source if age is not None else "unknown")


def parse_dicom_age(text: str) -> float | None:
    """A DICOM Age String ("065Y", "018M", "003W", "010D") in years; None when it is not one."""
    match = re.fullmatch(r"(\d{3})([DWMY])", text.strip().upper())
    return int(match.group(1)) * AGE_UNITS[match.group(2)] if match else None


def age_between(birth: str, study: str) -> float | None:
    """Years from a DICOM birth date to a study date (both YYYYMMDD); None when either is missing or invalid
    or the study comes before the birth."""
    try:
        born, seen = (date(int(d[:4]), int(d[4:6]), int(d[6:8])) for d in (birth.strip(), study.strip()))
    except (ValueError, IndexError):
        return None
    days = (seen - born).days
    return days / 365.25 if days >= 0 else None


def check_population(person: Demographics, population: Population) -> PopulationCheck:
    """Whether `person` lies in `population`, with one sentence saying so."""
    described = population.describe()
    age = person.age_years
    if age is None:
        within, note = None, f"Age unknown: not checked against the model's population ({described})."
    else:
        below = population.min_age_years is not None and age < population.min_age_years
        above = population.max_age_years is not None and age > population.max_age_years
        within = not (below or above)
        side = "within" if within else "below" if below else "above"
        note = f"Age {_years(age)} ({person.age_source}) is {side} the model's population ({described})."
    return PopulationCheck(within, age, person.age_source, person.sex, described, note)


def _years(age: float) -> str:
    """Completed years (months below 2), as ages are told."""
    return f"{int(age)} years" if age >= 2 else f"{int(age * 12)} months"
