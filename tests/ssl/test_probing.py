"""The probe job (osteo probe): it reuses the subject split of the encoder's pretraining run."""

import csv
from dataclasses import replace

import pytest

from osteo_engine.cohort import load_split_assignment, subject_key
from osteo_engine.ssl.data import cached_patch_bank
from osteo_engine.ssl.pretrain import pretrain
from osteo_engine.ssl.probing import ProbeRequest, probe_encoder

from .test_pretrain import _tiny


@pytest.fixture(scope="module")
def unsplit_manifest(tmp_path_factory):
    """A 40-subject phantom cohort whose manifest has no split column: splits come from the seed."""
    from osteo_engine.phantom import PhantomConfig, write_cohort

    root = tmp_path_factory.mktemp("unsplit")
    write_cohort(root, PhantomConfig(40, seed=11, raters=1, size=(192, 240)), workers=1)
    with open(root / "manifest.csv", newline="") as f:
        rows = [{k: v for k, v in r.items() if k != "split"} for r in csv.DictReader(f)]
    with open(root / "unsplit.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return root / "unsplit.csv"


@pytest.mark.slow
def test_the_probe_tests_only_subjects_its_encoder_never_trained_on(unsplit_manifest, tmp_path):
    config = _tiny(epochs=1)
    # pretraining with --seed 1 splits the subjects by seed 1, as `osteo pretrain --seed 1` does
    bank = cached_patch_bank(unsplit_manifest, config.patch_size, "raw", None, tmp_path / "cache", seed=1)
    pretrain(bank, tmp_path / "ssl", replace(config, seed=1, source="raw"))
    assignment = load_split_assignment(tmp_path / "ssl" / "splits.json")
    trained_on = {key for key, split in assignment.items() if split == "train"}
    result = probe_encoder(
        ProbeRequest(encoder=tmp_path / "ssl", data=unsplit_manifest, out=tmp_path / "probe", folds=3)
    )
    assert result.test_subjects and not {subject_key(s) for s in result.test_subjects} & trained_on
    assert result.report["split"] == "the encoder's pretraining run"
    assert "P000" not in (tmp_path / "ssl" / "splits.json").read_text()  # hashed: no subject IDs in the run
