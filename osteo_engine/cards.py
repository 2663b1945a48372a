"""Model cards and their provenance, made in one place.

A model card is the JSON file beside a model's .safetensors weights. Each kind of model has one typed card
(a frozen dataclass); `to_json` writes it and `from_json` reads it back, refusing a card of another kind or
one that lacks a required field with a ConfigError that names the file. Fields this version does not know
(from a newer or older program) are kept in `extra` and written back unchanged, so publishing a model never
drops what its card says.

Provenance says how a model was made: the command, the versions of the packages that made it, and a SHA-256
of each data source it was trained on.
"""

from __future__ import annotations

import dataclasses
import hashlib
import platform
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import ClassVar, Self

from .errors import ConfigError

PACKAGES = ("torch", "torchvision", "numpy", "safetensors", "scikit-learn", "opencv-python-headless", "pydicom")


@dataclass(frozen=True, kw_only=True)
class Provenance:
    command: str = ""  # the command line that made the model ("" for one made through the API)
    versions: dict[str, str] = field(default_factory=dict)  # package -> version, and python, osteo_engine
    data: dict[str, str] = field(default_factory=dict)  # data source as given -> "sha256:<hex>"
    made: str = ""  # UTC time, ISO 8601

    @classmethod
    def capture(cls, command: str, data: Iterable[str | Path] = ()) -> Provenance:
        """The provenance of a model made now by `command` from the data sources `data` (files or folders)."""
        return cls(
            command=command,
            versions=package_versions(),
            data={str(source): data_hash(source) for source in data},
            made=datetime.now(UTC).isoformat(timespec="seconds"),
        )


def package_versions() -> dict[str, str]:
    """Python's version, this engine's, and each of PACKAGES that is installed."""
    from . import __version__

    versions = {"python": platform.python_version(), "osteo_engine": __version__}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def data_hash(source: str | Path) -> str:
    """The SHA-256 ("sha256:<hex>") of a file's bytes, or of a folder's files (relative path and bytes, in
    path order; hidden files and `cache` folders are left out). A manifest CSV is hashed as itself: its
    images are named in it. Raises ConfigError when the source does not exist."""
    source = Path(source)
    digest = hashlib.sha256()
    if source.is_file():
        _hash_file(source, digest)
    elif source.is_dir():
        for path in sorted(p for p in source.rglob("*") if p.is_file() and _kept(p.relative_to(source))):
            digest.update(str(path.relative_to(source)).encode() + b"\0")
            _hash_file(path, digest)
    else:
        raise ConfigError(f"{source} does not exist, so the model's data cannot be recorded.")
    return "sha256:" + digest.hexdigest()


def _kept(relative: Path) -> bool:
    return not any(part.startswith(".") or part == "cache" for part in relative.parts)


def _hash_file(path: Path, digest) -> None:
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)


@dataclass(frozen=True, kw_only=True)
class ModelCard:
    """What every card holds. Subclasses set KIND (the card's "model" field) and add their own fields; a field
    without a default is required when the card is read."""

    KIND: ClassVar[str] = ""
    name: str = ""  # what the app and reports call it
    provenance: Provenance = field(default_factory=Provenance)
    epoch: int | None = None  # the training epoch the weights are from
    metrics: dict = field(default_factory=dict)  # that epoch's record
    saved: str | None = None  # UTC time the weights were written
    evaluations: dict = field(default_factory=dict)  # name -> results recorded when the model was published
    note: str = ""
    source_checkpoint: str | None = None  # for a published copy: the run checkpoint it was copied from
    extra: dict = field(default_factory=dict)  # fields this version does not know, kept as they were

    @property
    def command(self) -> str:
        return self.provenance.command

    def to_json(self) -> dict:
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}
        fields["provenance"] = dataclasses.asdict(self.provenance)
        return {"model": self.KIND, **self.extra, **_plain(fields)}

    def with_changes(self, **changes) -> Self:
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_json(cls, data: dict, path: str | Path) -> Self:
        """The card read from `data` (the JSON object of the card beside `path`). Raises ConfigError when the
        card describes another kind of model (a kind derived from this one is read as that kind) or lacks a
        required field."""
        name = Path(path).with_suffix(".json").name
        kind = data.get("model", cls.KIND)
        if kind != cls.KIND:
            if kind in CARDS and issubclass(CARDS[kind], cls):
                return CARDS[kind].from_json(data, path)
            raise ConfigError(f"{name} describes a {kind}, not a {cls.KIND}.")
        known = {f.name for f in dataclasses.fields(cls)} - {"extra", "provenance"}
        missing = [
            f.name
            for f in dataclasses.fields(cls)
            if f.name in known
            and f.name not in data
            and f.default is dataclasses.MISSING
            and f.default_factory is dataclasses.MISSING
        ]
        if missing:
            raise ConfigError(f"{name} lacks {missing[0]!r}; the model card is incomplete.")
        values = {k: v for k, v in data.items() if k in known}
        extra = {k: v for k, v in data.items() if k not in known | {"model", "provenance", "command"}}
        return cls(provenance=_provenance(data, name), extra=extra, **values)


def _provenance(data: dict, name: str) -> Provenance:
    """The card's provenance; a card from before provenance existed gives its command alone."""
    given = data.get("provenance")
    if given is None:
        return Provenance(command=str(data.get("command", "")), made=str(data.get("saved") or ""))
    if not isinstance(given, dict):
        raise ConfigError(f"{name} has a provenance that is not an object.")
    known = {f.name for f in dataclasses.fields(Provenance)}
    return Provenance(**{k: v for k, v in given.items() if k in known})


def _plain(value):
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


@dataclass(frozen=True, kw_only=True)
class SegmenterCard(ModelCard):
    KIND: ClassVar[str] = "MixtureSegmenter"
    model_config: dict  # SegmenterConfig's fields
    input_size: tuple[int, int] | list[int]  # network input (width, height), pixels
    preset: str = ""
    data: list[str] = field(default_factory=list)  # data sources as given to `osteo segment train`
    init: str | None = None  # the checkpoint it was warm-started from
    train_images: int = 0  # training images per epoch, repeats counted
    val_images: int = 0
    selected_by: str | None = None  # how the best checkpoint was chosen (None: the last epoch's weights)
    # added to every sample's background logit when the model is loaded to predict (`load_segmenter`): −log of the
    # background's weight in the training cross-entropy, which otherwise draws every bone wide (README)
    background_logit_offset: float = 0.0


@dataclass(frozen=True, kw_only=True)
class EncoderCard(ModelCard):
    KIND: ClassVar[str] = "SSLEncoder"
    method_config: dict  # MethodConfig's fields (encoder, stem, method, ...)
    patch_size: int  # side of the square patches it encodes, pixels
    preset: str = ""
    source: str = "patches"  # what it was pretrained on (registry.PATCH_INPUTS)
    patches: int = 0  # patches in its pretraining bank


@dataclass(frozen=True, kw_only=True)
class SupervisedEncoderCard(EncoderCard):
    KIND: ClassVar[str] = "SupervisedEncoder"
    val_macro_f1: float | None = None  # of the best checkpoint


@dataclass(frozen=True, kw_only=True)
class ProbeCard(ModelCard):
    KIND: ClassVar[str] = "LinearProbe"
    threshold: float  # probability at or above which a subject is called osteoporotic
    encoder: str = ""  # the encoder checkpoint it was fitted on
    method: str = ""
    input: str = "patches"
    name: str = "linear probe"
    trained_on: str = ""  # what a clinician should know about its training data
    refer_policy: dict = field(default_factory=dict)  # ReferPolicy's fields, once calibrated
    refer_calibration: dict = field(default_factory=dict)
    population: dict = field(default_factory=dict)  # population.Population's fields: who the model is meant for
    # the radiogrammetry features appended to the encoder's (radiogrammetry.FEATURES; none: the encoder's alone),
    # and the unit of their T and W
    indices: list = field(default_factory=list)
    indices_unit: str = ""
    fusion: dict = field(default_factory=dict)  # how the inputs were chosen: each kind's validation macro-F1


@dataclass(frozen=True, kw_only=True)
class ErrorMapCard(ModelCard):
    KIND: ClassVar[str] = "ErrorMap"
    name: str = "error map"
    features: list = field(default_factory=list)  # segmentation.error_map.CONTINUOUS, in order
    segmenter: str = ""  # the segmenter whose label maps it was fitted to
    data: list[str] = field(default_factory=list)  # manifests whose train split it was fitted on
    train_images: int = 0
    train_pixels: int = 0


CARDS: dict[str, type[ModelCard]] = {
    card.KIND: card for card in (SegmenterCard, EncoderCard, SupervisedEncoderCard, ProbeCard, ErrorMapCard)
}


def card_from_json(data: dict, path: str | Path) -> ModelCard:
    """The typed card of whichever kind `data` names. Raises ConfigError for an unknown kind."""
    kind = data.get("model")
    if kind not in CARDS:
        raise ConfigError(f"{Path(path).with_suffix('.json').name} describes an unknown kind of model ({kind!r}).")
    return CARDS[kind].from_json(data, path)
