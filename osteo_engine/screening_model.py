"""The screening model: loading one (segmenter, encoder, probe, refer policy), and packaging one: the pretrained
encoder (half precision, no projector), the linear probe, a refer policy calibrated on labelled images, and
an audit of the decisions on held-out subjects. `screening.screen` answers for one radiograph.

The refer policy refers the most uncertain segmentations and the probabilities nearest the threshold, sized so
that about `target_refer` of the calibration images are referred; the audit then measures the refer rate
that this policy gives on test subjects it never saw.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from dataclasses import fields as dataclass_fields
from pathlib import Path

import numpy as np

from .cards import EncoderCard, ProbeCard, Provenance
from .cohort import load_split_assignment, read_manifest
from .errors import ConfigError
from .evaluation import screening_metrics
from .population import Population
from .runs import RunFolder, load_model, write_model
from .screening import ReferPolicy, decide, refer_checks, screen
from .segmentation.image_scores import IMAGE_SCORES, LEGACY_SCORE

SYNTHETIC_NOTE = (
    "Demo classifier trained on the synthetic phantom cohort (`osteo phantom`), not on patients: "
    "its figures say nothing about real radiographs."
)


MODELS = Path(__file__).resolve().parents[1] / "resources" / "models"


@dataclass
class ScreeningModel:
    segmenter: object  # LoadedSegmenter
    encoder: object
    probe: object  # Probe
    patch_size: int
    policy: ReferPolicy = field(default_factory=ReferPolicy)
    names: dict = field(default_factory=dict)
    population: Population = field(default_factory=Population)  # who the model is meant for (its card)


def load_screening_model(folder: str | Path | None = None, segmenter: str | Path | None = None) -> ScreeningModel:
    """A folder with `encoder.safetensors` and `probe.safetensors` (default: the bundled demo classifier)."""
    from .radiogrammetry import index_kinds
    from .segmentation.predict import load_segmenter
    from .ssl.probe import Probe, load_encoder

    folder = Path(folder) if folder else MODELS / "screening"
    if not (folder / "probe.safetensors").exists() or not (folder / "encoder.safetensors").exists():
        raise ConfigError(
            f"no screening model in {folder} (encoder.safetensors and probe.safetensors); "
            "train one with `osteo pretrain` and `osteo probe`."
        )
    loaded_segmenter = load_segmenter(segmenter)
    encoder, features, encoder_card = load_encoder(folder / "encoder.safetensors")
    patch_size = encoder_card.patch_size
    if not isinstance(patch_size, int) or not 16 <= patch_size <= 1024:
        raise ConfigError(
            f"encoder.json in {folder} gives a patch size {patch_size!r}; it must be a whole number "
            "of pixels between 16 and 1024."
        )
    probe, probe_card = Probe.load(folder / "probe.safetensors", features)
    policy = _refer_policy(probe_card.refer_policy, folder / "probe.json")
    method = encoder_card.method_config
    names = {
        "segmenter": loaded_segmenter.card.name or "segmenter",
        "encoder": f"{method.get('method', 'pretrained')} {method['encoder']}",
        "probe": probe_card.name
        + (f" (fused with radiogrammetry: {index_kinds(probe.indices)})" if probe.indices else ""),
        "trained_on": probe_card.trained_on,
    }
    population = Population.from_card(probe_card.population)
    names["population"] = population.describe()
    return ScreeningModel(loaded_segmenter, encoder, probe, patch_size, policy, names, population)


def _refer_policy(fields: dict, card: Path) -> ReferPolicy:
    known = {f.name for f in dataclass_fields(ReferPolicy)}
    unknown = sorted(set(fields) - known) if isinstance(fields, dict) else []
    if not isinstance(fields, dict) or unknown:
        named = ", ".join(unknown) if unknown else repr(fields)
        raise ConfigError(
            f"{card.name} has a refer policy with unknown settings ({named}); it takes {', '.join(sorted(known))}."
        )
    fields = {"score": LEGACY_SCORE} | fields  # a policy saved before it named its score limits the expected error
    if fields["score"] not in IMAGE_SCORES:
        raise ConfigError(
            f"{card.name} has a refer policy for the image score {fields['score']!r}; the scores are "
            f"{', '.join(IMAGE_SCORES)}."
        )
    if not all(isinstance(v, (int, float)) and math.isfinite(v) for k, v in fields.items() if k != "score"):
        raise ConfigError(f"{card.name} has a refer policy whose settings are not all numbers.")
    return ReferPolicy(**fields)


@dataclass(frozen=True)
class ScreenedImage:
    label: int | None
    probability: float
    bones_found: int
    uncertainty: float
    decision: str


def screen_split(
    model: ScreeningModel,
    manifest: str | Path,
    split: str | None,
    progress: Callable[[int, int], None] | None = None,
    assignment: dict[str, str] | None = None,
) -> list[ScreenedImage]:
    """`screen` on every labelled image of one split of a manifest (None: of every split), with the decisions
    under the model's policy."""
    from .io import load_radiograph

    cohort = read_manifest(manifest, assignment=assignment)
    rows = cohort.split(split) if split else cohort.labelled()
    if not rows:
        raise ConfigError(
            f"{Path(manifest).name} has no labelled images" + (f" in its {split!r} split." if split else ".")
        )
    out = []
    for k, row in enumerate(rows):
        image = load_radiograph(row.image)
        spacing = image.pixel_spacing_mm[0] if image.pixel_spacing_mm else None
        result = screen(image.pixels, model, spacing)
        out.append(
            ScreenedImage(
                row.label,
                _nan_for_none(result.probability),
                sum(b["present"] for b in result.bones.values()),
                _nan_for_none(result.uncertainty),
                result.decision,
            )
        )
        if progress:
            progress(k + 1, len(rows))
    return out


def _nan_for_none(value: float | None) -> float:
    return float("nan") if value is None else value


def calibrate_refer_policy(
    screened: list[ScreenedImage],
    threshold: float,
    target_refer: float = 0.15,
    uncertainty_share: float = 0.01,
    base: ReferPolicy = ReferPolicy(),
    uncertainty_pool: list[ScreenedImage] | None = None,
) -> ReferPolicy:
    """The uncertainty limit refers the `uncertainty_share` most uncertain images of `uncertainty_pool`
    (default: `screened`; the segmentation's uncertainty knows no labels, so training images may serve);
    the margin around the threshold then grows until `target_refer` of `screened` are referred in all.
    The share is 1% because the limit is for outliers: ordinary phantom segmentations lie in a narrow band of
    uncertainty (their mean entropy 0.106-0.165 nats on 57 images), where a 5% limit referred 4 of 19 by chance."""
    uncertainty = np.array([s.uncertainty for s in (uncertainty_pool or screened)])
    limit = math.inf
    if uncertainty_share > 0:
        limit = math.ceil(max(float(np.quantile(uncertainty, 1 - uncertainty_share)), 1e-4) * 1e4) / 1e4
    policy = replace(base, max_uncertainty=limit, margin=0.0)
    distances = np.sort([abs(s.probability - threshold) for s in screened if math.isfinite(s.probability)])
    margin = 0.0
    for candidate in distances:
        if refer_rate(screened, threshold, replace(policy, margin=float(candidate))) > target_refer:
            break
        margin = float(candidate)
    return replace(policy, margin=math.floor(margin * 1e4) / 1e4)


def refer_rate(screened: list[ScreenedImage], threshold: float, policy: ReferPolicy) -> float:
    decisions = [s.decision for s in _redecided(screened, threshold, policy)]
    return decisions.count("refer") / max(len(decisions), 1)


def audit(screened: list[ScreenedImage], threshold: float, policy: ReferPolicy) -> dict:
    """Refer rate and why, metrics of the decided images, and the probability's metrics over every image."""
    screened = _redecided(screened, threshold, policy)
    labels = np.array([s.label for s in screened])
    probs = np.array([s.probability for s in screened])
    decided = np.array([s.decision != "refer" for s in screened])
    checks = [refer_checks(s.probability, s.bones_found, s.uncertainty, threshold, policy) for s in screened]
    why = {reason: sum(c[reason] for c in checks) for reason in checks[0]} if checks else {}
    scored = np.isfinite(probs)  # images without a probability (no bones) are referred, and left out of AUC
    out = {
        "images": len(screened),
        "refer_rate": round(float(1 - decided.mean()), 4),
        "refer_reasons": why,
        "all_images": _rounded(screening_metrics(labels[scored], probs[scored], threshold)),
        "without_probability": int((~scored).sum()),
    }
    if decided.any() and len(set(labels[decided])) == 2:
        out["decided_images"] = _rounded(screening_metrics(labels[decided], probs[decided], threshold))
    return out


def _rounded(metrics: dict) -> dict:
    return {k: round(float(v), 4) for k, v in metrics.items()}


@dataclass(frozen=True, kw_only=True)
class ExportRequest:
    encoder: Path  # pretraining run folder, or its encoder .safetensors
    probe: Path  # probe folder (from `osteo probe`), or its probe.safetensors
    data: Path  # the labelled manifest the probe was trained on: its test split audits the refer policy
    out: Path  # screening model folder to write
    calibration: Path | None = None  # a separate labelled manifest that sizes the refer policy
    segmenter: Path | None = None  # None: the bundled segmenter
    target_refer: float = 0.15  # share of calibration images to refer
    synthetic: bool = False  # the data are phantoms: the card says so
    population: str | None = None  # who the model is meant for; None: "adults" ("synthetic adults" if synthetic)
    min_age: float = 18.0  # years: anyone younger is referred
    command: str = ""


def export_screening_model(request: ExportRequest, progress: Callable[[int, int], None] | None = None) -> ProbeCard:
    """Write `out/encoder.safetensors` and `out/probe.safetensors` (+ cards); calibrate the refer policy and
    audit it on the data manifest's `test` split (the split the encoder's pretraining saw). The policy is sized
    on `calibration`, a labelled cohort the model never saw, when given (19 validation images size a margin by
    chance), else on the data's `train` (uncertainty) and `val` (margin) splits. Returns the probe's card;
    raises ConfigError for a checkpoint that is not a pretrained encoder."""
    from .ssl.probing import encoder_checkpoint

    checkpoint = encoder_checkpoint(request.encoder)
    probe_path = request.probe / "probe.safetensors" if request.probe.is_dir() else request.probe
    probe_state, probe_card = _package(checkpoint, probe_path, request)
    model = load_screening_model(request.out, request.segmenter)
    assignment = load_split_assignment(RunFolder.of_checkpoint(checkpoint).splits)  # the probe's split
    policy, calibration = _calibrate(model, request, assignment, progress)
    probe_card = probe_card.with_changes(refer_policy=policy, refer_calibration=calibration)
    write_model(request.out / "probe.safetensors", probe_state, probe_card)
    return probe_card


def _package(checkpoint: Path, probe_path: Path, request: ExportRequest) -> tuple[dict, ProbeCard]:
    """The encoder in half precision (no projector) and the probe, with the default refer policy for now."""
    state, encoder_card = load_model(checkpoint, EncoderCard)
    write_model(
        request.out / "encoder.safetensors",
        {k: v.half() if v.is_floating_point() else v for k, v in state.items()},
        encoder_card.with_changes(metrics={}),
    )
    probe_state, probe_card = load_model(probe_path, ProbeCard)
    probe_card = probe_card.with_changes(
        provenance=Provenance.capture(
            request.command, [request.data] + ([request.calibration] * bool(request.calibration))
        ),
        refer_policy=asdict(ReferPolicy()),
        trained_on=SYNTHETIC_NOTE if request.synthetic else request.data.name,
        population=asdict(
            Population(request.population or ("synthetic adults" if request.synthetic else "adults"), request.min_age)
        ),
    )
    write_model(request.out / "probe.safetensors", probe_state, probe_card)
    return probe_state, probe_card


def _calibrate(model: ScreeningModel, request: ExportRequest, assignment: dict | None, progress) -> tuple[dict, dict]:
    """(refer policy, its calibration record): sized on the calibration cohort, audited on the data's test."""
    threshold = model.probe.threshold
    if request.calibration:
        sized = screen_split(model, request.calibration, None, progress)
        policy = calibrate_refer_policy(sized, threshold, request.target_refer, base=model.policy)
        source = request.calibration.parent.name
    else:
        pool = screen_split(model, request.data, "train", progress, assignment)
        sized = screen_split(model, request.data, "val", progress, assignment)
        policy = calibrate_refer_policy(
            sized, threshold, request.target_refer, base=model.policy, uncertainty_pool=pool + sized
        )
        source = f"{request.data.parent.name} train+val"
    test = screen_split(model, request.data, "test", progress, assignment)
    record = {
        "calibrated_on": source,
        "target_refer": request.target_refer,
        "calibration": audit(sized, threshold, policy),
        "test": {"manifest": request.data.parent.name, **audit(test, threshold, policy)},
    }
    return asdict(policy), record


def _redecided(screened: list[ScreenedImage], threshold: float, policy: ReferPolicy) -> list[ScreenedImage]:
    return [
        ScreenedImage(
            s.label,
            s.probability,
            s.bones_found,
            s.uncertainty,
            decide(s.probability, s.bones_found, s.uncertainty, threshold, policy)[0],
        )
        for s in screened
    ]
