"""The paper's experiments in one call (tables 1–4, figure 5), resumable run by run.

Table 1: each SSL method on bone patches with constrained multi-crop (the full pipeline). Table 2: the
same without segmentation (pretraining on 7 random squares of each radiograph, drawn with the run's seed;
one prediction per radiograph from the whole image). Table 3: the encoder trained with
labels only. Table 4: conventional multi-crop. Every encoder is scored by the same linear probe protocol;
with an external cohort, every probe is scored there too.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .cohort import read_manifest
from .errors import ConfigError
from .fusion import EMPHASES, FUSION_VARIANTS, READ, fill_values, fusion_probe_config, probe_features, train_fused_probe
from .registry import TABLES
from .ssl.data import PatchBank, cached_patch_bank, probe_inputs
from .ssl.methods import METHODS
from .ssl.pretrain import pretrain, pretrain_preset
from .ssl.probe import ProbeConfig, encode, evaluate_probe, load_encoder, train_probe
from .storage import atomic_write_bytes, strict_json

VARIANT = {"1": "full", "2": "no-segmentation", "3": "supervised", "4": "conventional-multicrop"}


@dataclass(frozen=True)
class RunSpec:
    table: str
    method: str
    seed: int

    @property
    def variant(self) -> str:
        return VARIANT[self.table]

    @property
    def name(self) -> str:
        return f"t{self.table}-{self.method}-s{self.seed}"

    @property
    def source(self) -> str:
        return "raw" if self.table == "2" else "patches"


@dataclass(frozen=True, kw_only=True)
class ExperimentRequest:
    data: Path  # labelled manifest CSV
    out: Path  # experiment folder: runs/, results.json, report.md, the patch cache
    preset: str = "cpu-small"
    seeds: tuple[int, ...] = (0, 1, 2)
    methods: tuple[str, ...] = ("simclr", "supcon", "swav", "vicreg")
    tables: tuple[str, ...] = TABLES
    test_data: Path | None = None  # an external cohort: every probe is scored there too
    segmenter: Path | None = None  # for the bone patches; None: the bundled segmenter
    # preset fields: epochs, batch_size, patch_size, stem;
    # ablations: jitter, contrast_jitter, gamma_jitter, noise, blur, positives
    overrides: dict = field(default_factory=dict)
    probe_protocol: str = "folds"  # ProbeConfig.protocol
    finished_only: bool = False  # train nothing: results.json and report.md of the planned runs already finished


def plan(methods: list[str], tables: list[str], seeds: list[int]) -> list[RunSpec]:
    unknown = [m for m in methods if m not in METHODS] + [t for t in tables if t not in TABLES]
    if unknown:
        raise ConfigError(f"unknown methods or tables: {', '.join(unknown)}")
    specs = []
    for seed in seeds:
        for table in tables:
            for method in ["supervised"] if table == "3" else methods:
                specs.append(RunSpec(table, method, seed))
    return specs


class Encodings:
    """A run's encoder features of the patches its probes read, each bank encoded once: a table-1 run's probe and
    its fused row read the same features (the 500-subject external cohort's 3,500 patches take about 25 s on 2
    cores). The encoder is loaded from `checkpoint` when first needed."""

    def __init__(self, checkpoint: Path):
        self.checkpoint = checkpoint
        self._encoder = None
        self._features: dict[str, np.ndarray] = {}

    def of(self, part: PatchBank, name: str) -> np.ndarray:
        """(patches, F) features of `part`, remembered under `name` ("internal", "external")."""
        if name not in self._features:
            if self._encoder is None:
                self._encoder = load_encoder(self.checkpoint)[0]
            self._features[name] = encode(self._encoder, part.patches)
        return self._features[name]


def pretrained_encoder(request: ExperimentRequest, spec: RunSpec) -> Path:
    """Where an SSL run (tables 1, 2 and 4) keeps its encoder."""
    return request.out / "runs" / spec.name / "pretrain" / "checkpoints" / "last.safetensors"


def run_one(
    spec: RunSpec,
    bank: PatchBank,
    request: ExperimentRequest,
    external: PatchBank | None = None,
    encodings: Encodings | None = None,
) -> dict:
    """Train (or skip when done with the same settings) one run; returns its record for results.json. The probe
    reads its features from `encodings` (made for the run's encoder when None; the caller's must be of that
    encoder). Raises ConfigError when its folder holds a finished run made with other settings."""
    folder = request.out / "runs" / spec.name
    method = "simclr" if spec.method == "supervised" else spec.method
    config = pretrain_preset(
        request.preset,
        method,
        seed=spec.seed,
        source=spec.source,
        **request.overrides,
        multicrop_mode="conventional" if spec.table == "4" else "constrained",
    )
    probe_config = ProbeConfig(seed=spec.seed, protocol=request.probe_protocol)
    config_hash = _config_hash(spec, config, probe_config, external is not None)
    done = folder / "result.json"
    if done.exists():
        record = json.loads(done.read_text())
        if record.get("config_hash") != config_hash:
            raise ConfigError(
                f"{folder} holds a finished run made with other settings; choose a new --out "
                "folder, or remove that run to make it again."
            )
        return record
    if spec.table == "3":
        from .ssl.supervised import train_supervised_encoder

        checkpoint = train_supervised_encoder(bank, config, folder / "supervised")
    else:
        pretrain(bank, folder / "pretrain", config, resume=(folder / "pretrain" / "resume.pt").exists())
        checkpoint = pretrained_encoder(request, spec)
    encodings = encodings or Encodings(checkpoint)
    bank = probe_inputs(bank, config.patch_size)  # table 2: one whole radiograph per subject and image
    features = encodings.of(bank, "internal")
    probe, info = train_probe(features, bank, probe_config)
    record = {"table": spec.table, "method": spec.method, "variant": spec.variant, "seed": spec.seed}
    record |= scored(probe, info, features, bank)
    if external is not None:
        everything = external_inputs(external, config.patch_size)
        record |= scored_externally(probe, encodings.of(everything, "external"), everything)
    record["config_hash"] = config_hash
    atomic_write_bytes(done, strict_json(record, indent=2).encode())
    return record


def scored(probe, info: dict, features: np.ndarray, bank: PatchBank) -> dict:
    """A run's record of a fitted probe: its test subjects' metrics, intervals, bones and scores."""
    report = evaluate_probe(probe, features, bank, "test")
    return {
        "metrics": report["metrics"],
        "intervals_95": report["intervals_95"],
        "threshold": probe.threshold,
        "val_macro_f1": info["val_macro_f1"],
        "bone_contributions": report["bone_contributions"],
        "subject_scores": report["subject_scores"],
    }


def external_inputs(external: PatchBank, size: int) -> PatchBank:
    """Every labelled subject of an external cohort, as the probe sees it, all in the test split."""
    everything = probe_inputs(external.select(external.labels >= 0), size)
    everything.splits = np.full(len(everything.splits), "test")
    return everything


def scored_externally(probe, features: np.ndarray, everything: PatchBank) -> dict:
    """A run's record of a probe scored on the external cohort: its metrics and their 95% bootstrap intervals."""
    report = evaluate_probe(probe, features, everything, "test")
    return {"external": report["metrics"], "external_intervals_95": report["intervals_95"]}


def run_experiment(
    banks: dict[str, PatchBank],
    request: ExperimentRequest,
    external: dict[str, PatchBank] | None = None,
    oracle_auc: float | None = None,
    progress: Callable[[RunSpec, dict], None] | None = None,
) -> dict:
    """Every run the request plans, on `banks` (input -> patch bank; `external` likewise for another cohort),
    then results.json and report.md in `request.out`. With `request.finished_only`, the runs not yet finished
    are left out and listed (results.json's `not_run`, the report's last section) instead of trained."""
    runs, missing = [], []
    for spec in plan(list(request.methods), list(request.tables), list(request.seeds)):
        if request.finished_only and not _finished(spec, request):
            missing.append(spec.name)
            continue
        bank, external_bank = banks[spec.source], (external or {}).get(spec.source)
        encodings = Encodings(pretrained_encoder(request, spec)) if spec.table == "1" else None
        record = run_one(spec, bank, request, external_bank, encodings)
        runs.append(record)
        if progress:
            progress(spec, record)
        for extra in fusion_runs(spec, record, bank, request, external_bank, encodings):
            if not any(_same_row(extra, r) for r in runs):
                runs.append(extra)
    results = {
        "oracle_auc": oracle_auc,
        "not_run": missing,
        "runs": [
            {k: r[k] for k in ("table", "method", "variant", "seed", "metrics")}
            | {k: r[k] for k in ("external", "external_intervals_95") if k in r}
            for r in runs
        ],
    }
    atomic_write_bytes(request.out / "results.json", strict_json(results, indent=2).encode())
    from .report import write_report

    write_report(runs, request.out, oracle_auc, missing)
    return results


def fusion_runs(
    spec: RunSpec, record: dict, bank: PatchBank, request: ExperimentRequest, external, encodings: Encodings | None
) -> list[dict]:
    """Table 1's radiogrammetry rows beside a finished table-1 run (fusion.py): the indices alone (the same for
    every method of a seed) and the indices fused with this run's encoder features (read from `encodings`, the
    run's, given for every table-1 run); none for other tables or a bank without radiogrammetry. Each is cached
    in its own run folder."""
    if spec.table != "1" or bank.radiogrammetry is None:
        return []
    probe_config = fusion_probe_config(ProbeConfig(seed=spec.seed, protocol=request.probe_protocol))
    fill = fill_values(bank)
    everything = external_inputs(external, bank.patches.shape[-1]) if external is not None else None
    checkpoint = pretrained_encoder(request, spec)
    alone, fused_with = FUSION_VARIANTS
    rows = [("radiogrammetry", alone, None), (f"{spec.method}+radiogrammetry", fused_with, checkpoint)]
    out = []
    for method, variant, encoder_file in rows:
        folder = request.out / "runs" / f"t1-{method}-s{spec.seed}"
        made_with = {
            "probe": asdict(probe_config),
            "encoder": record["config_hash"] if encoder_file else None,
            "indices": list(READ),
            "emphases": list(EMPHASES) if encoder_file else None,
        }
        config_hash = hashlib.sha256(strict_json(made_with, sort_keys=True).encode()).hexdigest()[:16]
        done = folder / "result.json"
        cached = json.loads(done.read_text()) if done.exists() else {}
        if cached.get("config_hash") == config_hash or (cached and encoder_file and not encoder_file.exists()):
            out.append(cached)  # current, or fitted on older indices by an encoder no longer here to refit
            continue
        x = probe_features(bank, fill, encodings.of(bank, "internal") if encoder_file else None)
        probe, info = train_fused_probe(x, bank, probe_config) if encoder_file else train_probe(x, bank, probe_config)
        row = {"table": "1", "method": method, "variant": variant, "seed": spec.seed} | scored(probe, info, x, bank)
        if everything is not None:
            outside = encodings.of(everything, "external") if encoder_file else None
            row |= scored_externally(probe, probe_features(everything, fill, outside), everything)
        row["config_hash"] = config_hash
        row["indices"] = list(READ)
        atomic_write_bytes(done, strict_json(row, indent=2).encode())
        out.append(row)
    return out


def _finished(spec: RunSpec, request: ExperimentRequest) -> bool:
    return (request.out / "runs" / spec.name / "result.json").exists()


def _same_row(a: dict, b: dict) -> bool:
    return all(a[k] == b[k] for k in ("table", "method", "seed"))


def _config_hash(spec: RunSpec, config, probe: ProbeConfig, scored_externally: bool) -> str:
    text = strict_json(
        {"spec": asdict(spec), "pretrain": config.to_json(), "probe": asdict(probe), "external": scored_externally},
        sort_keys=True,
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def experiment(
    request: ExperimentRequest,
    progress: Callable[[RunSpec, dict], None] | None = None,
    bank_progress: Callable[[int, int], None] | None = None,
) -> dict:
    """The experiment job: patch banks (cached), the oracle of a phantom cohort, every planned run, results.json
    and report.md. Raises ConfigError, before any patch is made, when the external cohort shares images with the
    data (the external figures would then score training subjects)."""
    specs = plan(list(request.methods), list(request.tables), list(request.seeds))  # unknown names fail first
    if request.test_data:
        refuse_shared_images(request.data, request.test_data)
    size = pretrain_preset(request.preset, patch_size=request.overrides.get("patch_size")).patch_size
    if request.finished_only:  # no bank for an input whose runs are all still to do
        specs = [spec for spec in specs if _finished(spec, request)]
    inputs = needed_inputs([spec.table for spec in specs])

    def banks_of(manifest: Path) -> dict[str, PatchBank]:
        return {
            s: cached_patch_bank(manifest, size, s, request.segmenter, request.out / "cache", 0, bank_progress)
            for s in sorted(inputs)
        }

    banks = banks_of(request.data)
    external = banks_of(request.test_data) if request.test_data else None
    oracle = None
    if (request.data.parent / "phantom.json").exists():
        from .phantom import run_oracle

        oracle = run_oracle(request.data.parent).auc
    return run_experiment(banks, request, external, oracle, progress)


def refuse_shared_images(data: Path, test_data: Path) -> None:
    """ConfigError when two manifests name images with the same content (phantom subject IDs repeat across
    cohorts, so names prove nothing: the bytes are compared)."""

    def digests(manifest: Path) -> set[str]:
        return {hashlib.sha256(row.image.read_bytes()).hexdigest() for row in read_manifest(manifest).rows}

    shared = digests(data) & digests(test_data)
    if shared:
        raise ConfigError(
            f"{test_data} shares {len(shared)} image(s) with {data} (the same file content): an "
            "external cohort must hold none of the training data's images."
        )


def needed_inputs(tables: list[str]) -> set[str]:
    return {"raw" if t == "2" else "patches" for t in tables}
