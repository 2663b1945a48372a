"""The paper's experiments in one call (tables 1–4, figure 5), resumable run by run.

Table 1: each SSL method on bone patches with constrained multi-crop (the full pipeline). Table 2: the
same without segmentation (7 random squares of the raw radiograph). Table 3: the encoder trained with
labels only. Table 4: conventional multi-crop. Every encoder is scored by the same linear probe protocol;
with an external cohort, every probe is scored there too.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from .errors import ConfigError
from .ssl.data import PatchBank
from .ssl.methods import METHODS
from .ssl.pretrain import pretrain, pretrain_preset
from .ssl.probe import ProbeConfig, encode, evaluate_probe, load_encoder, train_probe
from .storage import atomic_write_bytes, strict_json

TABLES = ("1", "2", "3", "4")
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


def plan(methods: list[str], tables: list[str], seeds: list[int]) -> list[RunSpec]:
    unknown = [m for m in methods if m not in METHODS] + [t for t in tables if t not in TABLES]
    if unknown:
        raise ConfigError(f"unknown methods or tables: {', '.join(unknown)}")
    specs = []
    for seed in seeds:
        for table in tables:
            for method in (["supervised"] if table == "3" else methods):
                specs.append(RunSpec(table, method, seed))
    return specs


def run_one(spec: RunSpec, bank: PatchBank, preset: str, folder: Path, external: PatchBank | None = None,
            overrides: dict | None = None) -> dict:
    """Train (or skip when done) one run; returns its record for results.json."""
    done = folder / "result.json"
    if done.exists():
        return json.loads(done.read_text())
    method = "simclr" if spec.method == "supervised" else spec.method
    config = pretrain_preset(preset, method, seed=spec.seed, source=spec.source, **(overrides or {}),
                             multicrop_mode="conventional" if spec.table == "4" else "constrained")
    if spec.table == "3":
        from .ssl.supervised import train_supervised_encoder

        checkpoint = train_supervised_encoder(bank, config, folder)
    else:
        pretrain(bank, folder / "pretrain", config, resume=(folder / "pretrain" / "resume.pt").exists())
        checkpoint = folder / "pretrain" / "checkpoints" / "last.safetensors"
    encoder, _, _ = load_encoder(checkpoint)
    features = encode(encoder, bank.patches)
    probe, info = train_probe(features, bank, ProbeConfig(seed=spec.seed))
    report = evaluate_probe(probe, features, bank, "test")
    record = {"table": spec.table, "method": spec.method, "variant": spec.variant, "seed": spec.seed,
              "metrics": report["metrics"], "intervals_95": report["intervals_95"], "threshold": probe.threshold,
              "val_macro_f1": info["val_macro_f1"], "bone_contributions": report["bone_contributions"],
              "subject_scores": report["subject_scores"]}
    if external is not None:
        everything = external.select(external.labels >= 0)
        everything.splits = np.full(len(everything.splits), "test")
        record["external"] = evaluate_probe(probe, encode(encoder, everything.patches), everything, "test")["metrics"]
    atomic_write_bytes(done, strict_json(record, indent=2).encode())
    return record


def run_experiment(banks: dict[str, PatchBank], out: str | Path, preset: str, seeds: list[int], methods: list[str],
                   tables: list[str], external: dict[str, PatchBank] | None = None, oracle_auc: float | None = None,
                   overrides: dict | None = None, progress: Callable[[RunSpec, dict], None] | None = None) -> dict:
    """`banks` maps the input ("patches", "raw") to its patch bank; `external` likewise for another cohort;
    `overrides` changes preset fields (epochs, batch_size)."""
    out = Path(out)
    runs = []
    for spec in plan(methods, tables, seeds):
        record = run_one(spec, banks[spec.source], preset, out / "runs" / spec.name,
                         (external or {}).get(spec.source), overrides)
        runs.append(record)
        if progress:
            progress(spec, record)
    results = {"oracle_auc": oracle_auc, "runs": [{k: r[k] for k in ("table", "method", "variant", "seed", "metrics")}
                                                   | ({"external": r["external"]} if "external" in r else {})
                                                   for r in runs]}
    atomic_write_bytes(out / "results.json", strict_json(results, indent=2).encode())
    from .report import write_report

    write_report(runs, out, oracle_auc)
    return results


def needed_inputs(tables: list[str]) -> set[str]:
    return {"raw" if t == "2" else "patches" for t in tables}

