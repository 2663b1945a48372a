"""Linear probe on the frozen encoder (paper §3.4) and the subject decision.

Features of every patch are computed once. A linear layer (L2-regularised logistic regression) learns
osteoporosis from single bone patches; a subject's probability is the mean over its present bones (and over its
images). The regularisation strength is chosen by validation macro-F1 over subject-wise folds of the train and
val subjects, and the decision threshold on those folds' held-out predictions; both are stored with the probe.
Why folds: a 19-subject validation split picks by chance. On the phantom benchmark's encoder, the epoch it
picked for a gradient-trained probe (epoch 1 of 100) scored external AUC 0.715, where any converged probe
scored 0.74-0.77; five folds over 173 subjects pick among converged probes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from ..anatomy import BONE_NAMES
from ..cards import EncoderCard, ProbeCard
from ..errors import ConfigError
from ..evaluation import best_threshold, bootstrap_intervals, calibration, macro_f1, screening_metrics
from ..radiogrammetry import FEATURES, UNITS
from ..registry import PROBE_PROTOCOLS
from ..runs import load_model, pick_device, write_model
from .data import PatchBank
from .encoders import build_encoder

# Newton steps on the Hessian's Cholesky factor: the folds' 35–135 fits of a few hundred features converge in a
# few steps, where L-BFGS crawls at weak regularisation (the fused probe's fit 5.4x faster, bench/probe_fit.py)
SOLVER = "newton-cholesky"


@dataclass(frozen=True)
class ProbeConfig:
    strengths: tuple[float, ...] = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1)  # inverse L2 strengths C tried
    folds: int = 5
    seed: int = 0
    bootstrap_rounds: int = 1000
    # "folds": strength and threshold chosen over subject-wise folds of train+val (the default);
    # "paper": fitted on train, the val split chooses the strength by macro-F1 at the argmax threshold 0.5
    protocol: str = "folds"


def load_encoder(path: str | Path, device: torch.device | None = None) -> tuple[torch.nn.Module, int, EncoderCard]:
    """(encoder in eval mode on `device`, features it gives per patch, its card). Raises ConfigError for a file
    that is not a pretrained patch encoder."""
    state, card = load_model(path, EncoderCard)
    config = card.method_config
    try:
        encoder, features = build_encoder(config["encoder"], config["stem"])
        encoder.load_state_dict(state)
    except KeyError as exc:
        raise ConfigError(f"{Path(path).with_suffix('.json').name} lacks {exc} in its method_config.") from None
    except (TypeError, ValueError, RuntimeError, AttributeError) as exc:
        raise ConfigError(
            f"{Path(path).name} is not a pretrained patch encoder ({str(exc).splitlines()[0][:200]})."
        ) from None
    return encoder.eval().to(device or pick_device()), features, card


@torch.inference_mode()
def encode(encoder, patches: np.ndarray, batch: int = 256) -> np.ndarray:
    device = next(encoder.parameters()).device
    out = []
    for i in range(0, len(patches), batch):
        x = torch.from_numpy(patches[i : i + batch])[:, None].to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            out.append(encoder(x).float().cpu())
    return torch.cat(out).numpy()


def subject_scores(bank: PatchBank, patch_probs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(subjects, labels, probabilities): the mean of each subject's patch probabilities."""
    subjects = np.unique(bank.subjects)
    probs = np.array([patch_probs[bank.subjects == s].mean() for s in subjects])
    labels = np.array([bank.labels[bank.subjects == s][0] for s in subjects])
    return subjects, labels, probs


@dataclass
class Probe:
    weight: np.ndarray  # (F,)
    bias: float
    mean: np.ndarray  # feature standardisation from the training patches
    std: np.ndarray
    threshold: float
    # with radiogrammetry (fusion.py): the indices it reads (names from radiogrammetry.FEATURES, in its weights'
    # order), what a missing one becomes, (len(indices),), and the unit of T and W; the weights then cover the
    # encoder's features followed by the indices
    fill: np.ndarray | None = None
    indices_unit: str = ""
    indices: tuple[str, ...] = ()

    def patch_probabilities(self, features: np.ndarray) -> np.ndarray:
        z = ((features - self.mean) / self.std) @ self.weight + self.bias
        return 1.0 / (1.0 + np.exp(-z))

    def save(self, path: str | Path, card: ProbeCard) -> Path:
        """The probe's weights and `card`, with the probe's threshold, at `path` (.safetensors + .json). Raises
        ValueError for a fused probe whose fill values and named indices differ in number."""
        state = {
            "weight": torch.from_numpy(self.weight.astype(np.float32)),
            "bias": torch.tensor([self.bias], dtype=torch.float32),
            "mean": torch.from_numpy(self.mean.astype(np.float32)),
            "std": torch.from_numpy(self.std.astype(np.float32)),
        }
        if self.fill is not None:
            if len(self.fill) != len(self.indices):
                raise ValueError(f"{len(self.fill)} fill values for {len(self.indices)} named indices")
            state["fill"] = torch.from_numpy(self.fill.astype(np.float32))
            card = card.with_changes(indices=list(self.indices), indices_unit=self.indices_unit)
        return write_model(path, state, card.with_changes(threshold=self.threshold))

    @staticmethod
    def load(path: str | Path, features: int | None = None) -> tuple[Probe, ProbeCard]:
        """A probe and its card; `features`, when given, is what the encoder in front of it gives per patch.
        Raises ConfigError for a file that is not a probe, or one for another encoder or other indices."""
        state, card = load_model(path, ProbeCard)
        name = Path(path).name
        missing = [k for k in ("weight", "bias", "mean", "std") if k not in state]
        if missing:
            raise ConfigError(f"{name} lacks the probe's {', '.join(missing)}; it is not a linear probe.")
        weight, mean, std = (state[k].float().numpy() for k in ("weight", "mean", "std"))
        fill = _fill(state, card, name)
        width = features + len(fill) if features and fill is not None else features or len(weight)
        if any(a.shape != (width,) for a in (weight, mean, std)) or state["bias"].numel() != 1:
            raise ConfigError(
                f"{name} is a probe for {weight.shape[0] if weight.ndim == 1 else weight.shape} "
                f"features, but its encoder gives {width}."
            )
        threshold = card.threshold
        if not isinstance(threshold, (int, float)) or not 0 < threshold < 1:
            raise ConfigError(
                f"{Path(path).with_suffix('.json').name} gives a threshold {threshold!r}; "
                "it must be a number between 0 and 1."
            )
        probe = Probe(weight, float(state["bias"].flatten()[0]), mean, std, float(threshold))
        indices = tuple(card.indices) if fill is not None else ()
        return replace(probe, fill=fill, indices_unit=card.indices_unit, indices=indices), card


def _fill(state: dict, card: ProbeCard, name: str) -> np.ndarray | None:
    """A fused probe's fill values, checked against the indices this version measures (a probe fitted before an
    index was added reads the ones it knows); None for a plain one."""
    if "fill" not in state:
        return None
    if not card.indices or set(card.indices) - set(FEATURES) or card.indices_unit not in UNITS:
        raise ConfigError(
            f"{name} reads radiogrammetry indices ({', '.join(card.indices) or 'unnamed'}, unit "
            f"{card.indices_unit or 'unknown'}) that this version does not measure ({', '.join(FEATURES)})."
        )
    fill = state["fill"].float().numpy()
    if fill.shape != (len(card.indices),) or not np.isfinite(fill).all():
        raise ConfigError(f"{name} holds damaged radiogrammetry fill values.")
    return fill


def train_probe(
    features: np.ndarray,
    bank: PatchBank,
    config: ProbeConfig = ProbeConfig(),
    *,
    appended: int = 0,
    emphases: tuple[float, ...] = (1.0,),
) -> tuple[Probe, dict]:
    """A probe on `features` (patches, F) of `bank`'s labelled train and val patches, by `config.protocol`.
    `appended`: how many trailing columns are a different kind of input (fusion's radiogrammetry indices); their
    standardised values are multiplied by each of `emphases` in turn, so that the L2 penalty shrinks them that
    much less than the encoder's hundreds of features (a ridge penalty per group). The protocol chooses the
    emphasis with the strength. Returns the probe and what chose it: strength, emphasis, threshold, validation
    macro-F1 (on subjects the chosen model did not see, at a threshold not fitted on them). Raises ConfigError
    without two classes to learn from."""
    if config.protocol not in PROBE_PROTOCOLS:
        raise ConfigError(f"unknown probe protocol {config.protocol!r}; choose one of {', '.join(PROBE_PROTOCOLS)}.")
    train = (bank.splits == "train") & (bank.labels >= 0)
    val = (bank.splits == "val") & (bank.labels >= 0)
    if len(np.unique(bank.labels[train])) < 2 or not val.any():
        raise ConfigError("the probe needs labelled training patches of both classes and labelled validation ones.")
    # (strength, column scale, emphasis): every emphasis, the plainest first; then the most regularised first
    candidates = [(c, _scale(features.shape[1], appended, e), e) for e in emphases for c in config.strengths]
    if config.protocol == "paper":
        return _paper_probe(features, bank, train, val, candidates)
    chosen = train | val
    x, y, subjects = features[chosen], bank.labels[chosen], np.asarray(bank.subjects)[chosen]
    folds = _subject_folds(y, subjects, config)
    part = bank.select(chosen)
    held_outs = [_out_of_fold(x, y, folds, c, scale) for c, scale, _ in candidates]
    scored = [(_honest_fold_f1(part, held, folds), k) for k, held in enumerate(held_outs)]
    score, best = max(scored, key=lambda t: t[0])  # first of equals: the most regularised
    strength, scale, emphasis = candidates[best]
    _, labels, subject_probs = subject_scores(part, held_outs[best])
    threshold = best_threshold(labels, subject_probs)
    probe = _probe(x, y, strength, threshold, scale)
    return probe, {
        "protocol": "folds",
        "strength": strength,
        "emphasis": emphasis,
        "folds": len(folds),
        "val_macro_f1": score,
        "threshold": threshold,
    }


def _scale(width: int, appended: int, emphasis: float) -> np.ndarray:
    """(width,) what each standardised column is multiplied by: `emphasis` for the last `appended`, else 1."""
    scale = np.ones(width)
    if appended:
        scale[-appended:] = emphasis
    return scale


def _honest_fold_f1(part: PatchBank, held_out: np.ndarray, folds: list) -> float:
    """Mean over folds of the macro-F1 of a fold's subjects at the threshold the other folds choose."""
    scores = []
    for _, test_index in folds:
        fold = np.zeros(len(held_out), bool)
        fold[test_index] = True
        _, rest_labels, rest_probs = subject_scores(part.select(~fold), held_out[~fold])
        _, labels, probs = subject_scores(part.select(fold), held_out[fold])
        scores.append(macro_f1(labels, probs, best_threshold(rest_labels, rest_probs)))
    return float(np.mean(scores))


def _paper_probe(
    features: np.ndarray, bank: PatchBank, train: np.ndarray, val: np.ndarray, candidates: list
) -> tuple[Probe, dict]:
    """The paper's protocol: fitted on train; the val split picks the model by macro-F1; argmax (0.5)."""
    x, y = features[train], bank.labels[train]
    val_bank = bank.select(val)
    scored = []
    for strength, scale, emphasis in candidates:
        probe = _probe(x, y, strength, 0.5, scale)
        _, labels, probs = subject_scores(val_bank, probe.patch_probabilities(features[val]))
        scored.append((macro_f1(labels, probs, 0.5), strength, emphasis, probe))
    score, strength, emphasis, probe = max(scored, key=lambda t: t[0])
    return probe, {
        "protocol": "paper",
        "strength": strength,
        "emphasis": emphasis,
        "folds": 0,
        "val_macro_f1": float(score),
        "threshold": 0.5,
    }


def _probe(x: np.ndarray, y: np.ndarray, strength: float, threshold: float, scale: np.ndarray) -> Probe:
    """Fitted on the standardised features times `scale`, which the probe keeps as a smaller std."""
    mean, std = _standardisation(x, scale)
    model = _fit(x, y, mean, std, strength)
    return Probe(model.coef_[0].astype(np.float64), float(model.intercept_[0]), mean, std, threshold)


def _subject_folds(y: np.ndarray, subjects: np.ndarray, config: ProbeConfig) -> list:
    from sklearn.model_selection import StratifiedGroupKFold

    per_class = [len(np.unique(subjects[y == c])) for c in (0, 1)]
    k = min(config.folds, *per_class)
    if k < 2:
        raise ConfigError("the probe needs at least two subjects of each class among the train and val subjects.")
    splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=config.seed)
    return list(splitter.split(np.zeros(len(y)), y, subjects))


def _standardisation(x: np.ndarray, scale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean, std) that standardise x's columns and then multiply them by `scale`."""
    return x.mean(0), (x.std(0) + 1e-6) / scale


def _fit(x: np.ndarray, y: np.ndarray, mean: np.ndarray, std: np.ndarray, strength: float):
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=strength, class_weight="balanced", max_iter=5000, solver=SOLVER)
    return model.fit((x - mean) / std, y)


def _out_of_fold(x: np.ndarray, y: np.ndarray, folds: list, strength: float, scale: np.ndarray) -> np.ndarray:
    """Each patch's probability from the model fitted without its fold (standardised on the rest, times
    `scale`)."""
    out = np.zeros(len(y))
    for train_index, test_index in folds:
        mean, std = _standardisation(x[train_index], scale)
        model = _fit(x[train_index], y[train_index], mean, std, strength)
        out[test_index] = model.predict_proba((x[test_index] - mean) / std)[:, 1]
    return out


def evaluate_probe(
    probe: Probe, features: np.ndarray, bank: PatchBank, split: str = "test", rounds: int = 1000
) -> dict:
    """Subject-level metrics with 95% bootstrap intervals, calibration, and per-bone contributions."""
    chosen = (bank.splits == split) & (bank.labels >= 0)
    if not chosen.any():
        raise ConfigError(f"no labelled {split} patches to evaluate.")
    part = bank.select(chosen)
    patch_probs = probe.patch_probabilities(features[chosen])
    subjects, labels, probs = subject_scores(part, patch_probs)
    metrics = screening_metrics(labels, probs, probe.threshold)
    cal = calibration(labels, probs)
    positives = set(subjects[(labels == 1) & (probs >= probe.threshold)])
    contributions = {}
    for bone in BONE_NAMES:
        values = patch_probs[(part.bones == bone) & np.isin(part.subjects, list(positives))]
        contributions[bone] = (
            {"mean": float(values.mean()), "sem": float(values.std() / np.sqrt(len(values))), "n": int(len(values))}
            if len(values)
            else None
        )
    return {
        "split": split,
        "subjects": int(len(subjects)),
        "metrics": metrics,
        "intervals_95": bootstrap_intervals(labels, probs, probe.threshold, rounds),
        "calibration": asdict(cal),
        "bone_contributions": contributions,
        # labels and probabilities for ROC curves, without subject identifiers
        "subject_scores": [[int(y), float(p)] for y, p in zip(labels, probs)],
    }
