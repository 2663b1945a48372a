"""Who a screening model is for: ages from DICOM or the user, and `refer` for anyone outside its population."""

import json

import pydicom
import pytest

from osteo_engine.errors import ConfigError
from osteo_engine.population import (
    Demographics,
    Population,
    age_between,
    check_population,
    demographics_from_dicom,
    parse_dicom_age,
)
from osteo_engine.screening import ReferPolicy, decide

from .conftest import SAMPLE_DICOM

ADULTS = Population("synthetic adults", 18.0)


@pytest.mark.parametrize(
    "text, years",
    [("065Y", 65.0), ("018M", 1.5), ("026W", 26 * 7 / 365.25), ("010D", 10 / 365.25), ("065", None), ("6Y", None)],
)
def test_dicom_age_strings_are_read_in_years_and_malformed_ones_are_unknown(text, years):
    assert parse_dicom_age(text) == (pytest.approx(years) if years is not None else None)


def test_age_from_birth_and_study_dates_and_nonsense_dates_are_unknown():
    assert age_between("20100615", "20220615") == pytest.approx(12.0, abs=0.01)
    assert age_between("20220615", "20100615") is None  # studied before born
    assert age_between("", "20220615") is None and age_between("20101340", "20220615") is None


def test_a_dicom_file_gives_its_age_from_patient_age_first_then_from_the_dates():
    ds = pydicom.Dataset()
    ds.PatientSex, ds.PatientBirthDate, ds.StudyDate = "F", "19600101", "20200101"
    assert demographics_from_dicom(ds) == Demographics(
        pytest.approx(60.0, abs=0.01), "F", "DICOM birth and study dates"
    )
    ds.PatientAge = "012Y"
    assert demographics_from_dicom(ds) == Demographics(12.0, "F", "DICOM PatientAge")
    assert demographics_from_dicom(pydicom.Dataset()) == Demographics(None, None, "unknown")


def test_a_child_is_referred_with_their_age_and_the_models_population_named():
    child = check_population(Demographics(9.5, "M", "DICOM PatientAge"), ADULTS)
    assert child.within is False
    decision, reasons = decide(0.9, 7, 0.05, 0.5, ReferPolicy(), child)
    assert decision == "refer"
    assert any("9 years" in r and "synthetic adults, 18 years and over" in r for r in reasons)
    adult = check_population(Demographics(61.0, "F", "given"), ADULTS)
    assert adult.within is True and decide(0.9, 7, 0.05, 0.5, ReferPolicy(), adult)[0] == "osteoporosis"


def test_an_unknown_age_is_said_not_guessed():
    unknown = check_population(Demographics(), ADULTS)
    assert unknown.within is None and unknown.age_years is None
    assert "Age unknown" in unknown.note
    assert decide(0.9, 7, 0.05, 0.5, ReferPolicy(), unknown)[0] == "osteoporosis"  # not a reason to refer alone


def test_given_values_come_first_and_impossible_ones_are_refused():
    from_file = Demographics(40.0, "F", "DICOM PatientAge")
    assert from_file.with_given(age_years=8) == Demographics(8, "F", "given")
    assert from_file.with_given(sex="m").sex == "M"
    with pytest.raises(ConfigError, match="not possible"):
        from_file.with_given(age_years=-3)
    with pytest.raises(ConfigError, match="F or M"):
        from_file.with_given(sex="X")


def test_a_card_without_a_population_means_adults_and_a_broken_one_is_refused():
    assert Population.from_card({}) == Population("adults", 18.0)
    assert (
        Population.from_card({"description": "adults", "min_age_years": 50}).describe() == "adults, 50 years and over"
    )
    with pytest.raises(ConfigError, match="population"):
        Population.from_card({"min_age": 18})
    with pytest.raises(ConfigError, match="0–150"):
        Population.from_card({"min_age_years": "adult"})


def test_osteo_screen_refers_a_child_given_on_the_command_line_and_reads_the_age_of_the_sample(capsys):
    from training_cli.main import main

    assert main(["screen", str(SAMPLE_DICOM), "--age", "12", "--json"]) == 0
    child = json.loads(capsys.readouterr().out)
    assert child["decision"] == "refer"
    assert child["population"]["within"] is False and child["population"]["age_source"] == "given"
    assert any("12 years" in r and "synthetic adults" in r for r in child["reasons"])
    assert main(["screen", str(SAMPLE_DICOM)]) == 0
    text = capsys.readouterr().out
    assert "(DICOM PatientAge) is within the model's population (synthetic adults, 18 years and over)" in text
