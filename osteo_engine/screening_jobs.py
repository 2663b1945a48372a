"""The screening jobs: `osteo screen` (an answer per radiograph, streamed as each is done) and
`osteo audit-screening` (a labelled manifest screened and the refer policy's effect measured). The CLI and
the app's Screen workspace call these."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .errors import OsteoError
from .population import Demographics


@dataclass(frozen=True, kw_only=True)
class ScreenRequest:
    inputs: tuple[Path, ...]  # radiographs, folders of radiographs, or manifest CSVs
    model: Path | None = None  # screening model folder; None: the bundled demo classifier
    segmenter: Path | None = None  # None: the bundled segmenter
    age: float | None = None  # years, for every file: put before what the files say
    sex: str | None = None  # "F" or "M", likewise


@dataclass(frozen=True)
class ScreenedFile:
    image: str  # the file's name (never a path: it may hold a patient's name)
    answer: dict | None = None  # ScreeningResult.to_json(), or None when the file could not be screened
    error: str | None = None  # why not, in one sentence

    def to_json(self) -> dict:
        return {"image": self.image, **(self.answer or {"error": self.error})}


@dataclass
class ScreenResult:
    screened: list[ScreenedFile] = field(default_factory=list)

    @property
    def failures(self) -> int:
        return sum(s.error is not None for s in self.screened)


def expand_inputs(inputs: tuple[Path, ...]) -> tuple[list[Path], list[ScreenedFile]]:
    """(files to screen, one error entry per input that gives none): files as given; folders as their image
    files; manifests as their image column. An input that names nothing to screen, a missing file or a folder
    without radiographs, is an error entry, never silently skipped."""
    from .cohort import read_manifest
    from .io import radiograph_files

    files: list[Path] = []
    problems: list[ScreenedFile] = []
    for item in map(Path, inputs):
        if item.is_dir():
            found = radiograph_files(item)
            files += found
            if not found:
                problems.append(ScreenedFile(item.name, error=f"{item.name} is a folder with no radiographs in it."))
        elif item.suffix.lower() == ".csv" and item.is_file():
            files += [row.image for row in read_manifest(item).rows]
        else:
            files.append(item)
    problems += [ScreenedFile(f.name, error=f"{f.name} does not exist.") for f in files if not f.exists()]
    return [f for f in files if f.exists()], problems


def screen_files(request: ScreenRequest, on_result: Callable[[ScreenedFile], None] | None = None) -> ScreenResult:
    """Screen every radiograph the inputs name, calling `on_result` as each answer (or error) is ready. The
    inputs are checked before the models load, so a typo costs no seconds; an unreadable image becomes an
    error entry and the others go on. Raises ConfigError for an unusable model."""
    from .io import load_radiograph
    from .screening import screen
    from .screening_model import load_screening_model

    result = ScreenResult()

    def report(entry: ScreenedFile) -> None:
        result.screened.append(entry)
        if on_result:
            on_result(entry)

    Demographics().with_given(request.age, request.sex)  # an impossible age or sex: ConfigError before any work
    files, problems = expand_inputs(request.inputs)
    for problem in problems:
        report(problem)
    if not files:
        return result
    model = load_screening_model(request.model, request.segmenter)  # once for every image
    for path in files:
        try:
            image = load_radiograph(path)
            spacing = image.pixel_spacing_mm[0] if image.pixel_spacing_mm else None
            person = image.demographics.with_given(request.age, request.sex)
            report(ScreenedFile(path.name, answer=screen(image.pixels, model, spacing, person).to_json()))
        except OsteoError as exc:
            report(ScreenedFile(path.name, error=str(exc)))
    return result


@dataclass(frozen=True, kw_only=True)
class AuditRequest:
    data: Path  # labelled manifest (another site's data, say)
    split: str = "all"  # a split of the manifest, or "all"
    model: Path | None = None
    segmenter: Path | None = None


def audit_screening(request: AuditRequest, progress: Callable[[int, int], None] | None = None) -> dict:
    """Screen the manifest's split and report the refer rate, why images were referred, and the metrics over
    every image and over the decided ones (screening_model.audit). Raises CohortError for a bad manifest."""
    from .screening_model import audit, load_screening_model, screen_split

    model = load_screening_model(request.model, request.segmenter)
    split = None if request.split == "all" else request.split
    return audit(screen_split(model, request.data, split, progress), model.probe.threshold, model.policy)
