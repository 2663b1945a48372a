import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from osteo_engine.errors import ConfigError
from osteo_engine.ssl.data import PatchBank, raw_patches
from osteo_engine.ssl.multicrop import MultiCropConfig
from osteo_engine.ssl.pretrain import partners, pretrain, pretrain_preset, pretraining_patches, subject_groups


def _bank(n=48, size=32):
    rng = np.random.default_rng(0)
    patches = np.zeros((n, size, size), np.float32)
    for i in range(n):
        x = rng.integers(4, size - 8)
        patches[i, 4 : size - 4, x : x + 4] = rng.uniform(0.3, 1.0)
    splits = np.array(["train"] * (n - 8) + ["val"] * 4 + ["test"] * 4)
    labels = np.array([i % 2 for i in range(n)])
    labels[:4] = -1
    return PatchBank(
        patches,
        np.array(["M2"] * n),
        np.array([f"s{i // 7}" for i in range(n)]),
        labels,
        splits,
        np.array([f"img{i // 7}.png" for i in range(n)]),
        [],
    )


def _tiny(method="simclr", epochs=2):
    config = pretrain_preset("cpu-small", method, epochs=epochs, batch_size=8, patch_size=32)
    return replace(
        config,
        method=replace(config.method, projector_hidden=32, projector_out=16, prototypes=8),
        multicrop=MultiCropConfig(global_size=16, local_size=8, local_crops=2),
    )


def test_pretraining_sees_train_and_unlabelled_patches_only():
    bank = _bank()
    chosen = pretraining_patches(bank)
    assert set(chosen.splits) == {"train"} and len(chosen.patches) == 40


class _Stop(Exception):
    pass


def _stop_after(epoch):
    def events(event):
        if event.kind == "epoch" and event.epoch == epoch:
            raise _Stop

    return events


@pytest.mark.parametrize(("method", "positives"), [("swav", "view"), ("simclr", "subject")])
def test_a_short_run_writes_the_encoder_and_resumes_exactly(tmp_path, method, positives):
    bank = _bank()
    config = replace(_tiny(method), positives=positives)
    full = pretrain(bank, tmp_path / "full", config)
    with pytest.raises(_Stop):
        pretrain(bank, tmp_path / "resumed", config, events=_stop_after(1))
    pretrain(bank, tmp_path / "resumed", config, resume=True)
    a = load_file(str(full.run / "checkpoints" / "last.safetensors"))
    b = load_file(str(tmp_path / "resumed" / "checkpoints" / "last.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    card = json.loads((full.run / "checkpoints" / "last.json").read_text())
    assert card["method_config"]["method"] == method and card["epoch"] == 2
    lines = (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2]


def test_supcon_pretrains_on_labelled_patches_only_and_too_few_are_refused(tmp_path):
    bank = _bank()  # 40 training patches, 4 of them unlabelled
    assert len(pretraining_patches(bank, "simclr").patches) == 40
    supcon = pretraining_patches(bank, "supcon")
    assert len(supcon.patches) == 36 and (supcon.labels >= 0).all() and set(supcon.splits) == {"train"}
    pretrain(bank, tmp_path / "simclr", replace(_tiny("simclr", epochs=1), batch_size=40))  # 40 patches: a batch
    with pytest.raises(ConfigError, match="36 pretraining patches are fewer than one batch"):
        pretrain(bank, tmp_path / "supcon", replace(_tiny("supcon", epochs=1), batch_size=40))


def test_raw_input_takes_seven_squares():
    patches = raw_patches(np.random.default_rng(0).random((200, 160)).astype(np.float32), 32, np.random.default_rng(1))
    assert patches.shape == (7, 32, 32)


def test_table_2_probes_whole_radiographs_and_pretrains_on_squares_that_change_with_the_seed(small_cohort, tmp_path):
    from osteo_engine.ssl.data import RAW_PATCHES, cached_patch_bank, pretraining_inputs, probe_inputs

    bank = cached_patch_bank(small_cohort / "manifest.csv", 32, "raw", None, tmp_path)
    images = len(set(bank.images.tolist()))
    probed = probe_inputs(bank, 32)
    assert probed.patches.shape == (images, 32, 32)  # one input, so one prediction, per radiograph
    first, second = pretraining_inputs(bank, 32, seed=0), pretraining_inputs(bank, 32, seed=1)
    assert first.patches.shape == (RAW_PATCHES * images, 32, 32)
    assert not np.array_equal(first.patches, second.patches)
    assert np.array_equal(first.patches, pretraining_inputs(bank, 32, seed=0).patches)
    assert (first.patches.reshape(len(first.patches), -1).max(1) > 0).all()  # squares of the hand, not padding


@pytest.mark.slow
def test_osteo_pretrain_on_raw_squares_writes_a_run_and_reuses_its_patch_cache(small_cohort, tmp_path, capsys):
    from training_cli.main import main

    args = [
        "pretrain",
        "--method",
        "vicreg",
        "--data",
        str(small_cohort / "manifest.csv"),
        "--input",
        "raw",
        "--out",
        str(tmp_path / "run"),
        "--epochs",
        "1",
        "--batch-size",
        "16",
        "--json",
    ]
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["epochs"] == 1 and out["crops"]["crops"] > 0
    assert (tmp_path / "run" / "checkpoints" / "last.safetensors").exists()
    cache = list((tmp_path / "run" / "cache").glob("patches-raw-64-*.npz"))
    assert len(cache) == 1
    stamp = cache[0].stat().st_mtime_ns
    assert main(args[:-1] + ["--resume"]) == 0  # finished: nothing to redo, and the cache is reused
    assert cache[0].stat().st_mtime_ns == stamp
    capsys.readouterr()

    assert (
        main(
            [
                "probe",
                "--encoder",
                str(tmp_path / "run"),
                "--data",
                str(small_cohort / "manifest.csv"),
                "--out",
                str(tmp_path / "probe"),
                "--folds",
                "3",
                "--json",
            ]
        )
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert report["folds"] <= 3 and report["strength"] > 0
    assert report["input"] == "raw" and report["method"] == "vicreg"
    assert set(report["test"]["metrics"]) == {"precision", "recall", "f1", "auc", "accuracy"}
    assert (tmp_path / "probe" / "probe.safetensors").exists() and (tmp_path / "probe" / "report.json").exists()


def test_non_finite_losses_are_skipped_until_too_many_then_training_stops_plainly():
    from osteo_engine.runs import DivergenceGuard

    guard = DivergenceGuard("pretraining", epoch=3, limit=2)
    assert guard.finite(torch.tensor(1.0))
    assert not guard.finite(torch.tensor(float("nan")))
    assert not guard.finite(torch.tensor(float("inf")))
    with pytest.raises(ConfigError, match="epoch 3.*checkpoint is kept"):
        guard.finite(torch.tensor(float("nan")))


def test_a_larger_patch_scales_the_crops_with_it():
    base = pretrain_preset("cpu-small")
    bigger = pretrain_preset("cpu-small", patch_size=2 * base.patch_size, multicrop_mode="conventional")
    assert bigger.multicrop.global_size == 2 * base.multicrop.global_size
    assert bigger.multicrop.local_size == 2 * base.multicrop.local_size
    assert bigger.multicrop.mode == "conventional" and pretrain_preset("cpu-small").multicrop == base.multicrop


def test_the_jitter_ablation_narrows_or_removes_brightness_and_contrast_and_nothing_else():
    paper = pretrain_preset("cpu-small").multicrop.augment
    assert paper.brightness == paper.contrast == (0.5, 1.5)
    off = pretrain_preset("cpu-small", jitter=0.0).multicrop.augment
    assert off.brightness == off.contrast == (1.0, 1.0)
    narrow = pretrain_preset("cpu-small", jitter=0.2).multicrop.augment
    assert narrow.brightness == pytest.approx((0.8, 1.2)) and narrow.rotation_deg == paper.rotation_deg
    with pytest.raises(ConfigError, match="outside"):
        pretrain_preset("cpu-small", jitter=1.0)
    brightness_only = pretrain_preset("cpu-small", contrast_jitter=0.0).multicrop.augment
    assert brightness_only.brightness == paper.brightness and brightness_only.contrast == (1.0, 1.0)
    assert pretrain_preset("cpu-small", jitter=0.2, contrast_jitter=0.1).multicrop.augment.contrast == pytest.approx(
        (0.9, 1.1)
    )


def test_subject_positives_pair_each_patch_with_another_bone_of_its_subject():
    subjects = np.array(["a", "b", "a", "a", "c", "b"])
    groups = subject_groups(subjects)
    assert [list(g) for g in groups[:2]] == [[0, 2, 3], [1, 5]] and list(groups[4]) == [4]
    index = torch.arange(6).repeat(20)
    chosen = partners(index, groups, torch.Generator().manual_seed(0))
    assert all(subjects[p] == subjects[i] for i, p in zip(index.tolist(), chosen.tolist()))
    assert ((chosen != index) | (index == 4)).all() and set(chosen[index == 0].tolist()) == {2, 3}
    assert torch.equal(chosen, partners(index, groups, torch.Generator().manual_seed(0)))


def test_a_stem_override_changes_the_encoders_first_layer_and_nothing_else():
    small = pretrain_preset("cpu-small", "swav")
    full_detail = pretrain_preset("cpu-small", "swav", stem="cifar")
    assert small.method.stem == "compact" and full_detail.method.stem == "cifar"
    assert replace(full_detail, method=small.method) == small
    with pytest.raises(ConfigError, match="unknown stem"):
        pretrain_preset("cpu-small", stem="vit")


def test_subject_positives_are_an_option_that_leaves_the_papers_runs_as_they_were_recorded():
    paper = pretrain_preset("cpu-small")
    assert paper.positives == "view" and "positives" not in paper.to_json()
    assert pretrain_preset("cpu-small", positives="subject").to_json()["positives"] == "subject"
    with pytest.raises(ConfigError, match="unknown positives"):
        pretrain_preset("cpu-small", positives="image")


def test_the_acquisition_ablation_adds_gamma_and_noise_to_the_papers_views():
    augment = pretrain_preset("cpu-small", gamma_jitter=0.25, noise=0.02).multicrop.augment
    assert augment.gamma == pytest.approx((0.8, 1.25)) and augment.noise == (0.0, 0.02)
    assert augment.brightness == pretrain_preset("cpu-small").multicrop.augment.brightness
    with pytest.raises(ConfigError, match="must not be negative"):
        pretrain_preset("cpu-small", noise=-0.1)
    assert pretrain_preset("cpu-small", blur=1.0).multicrop.augment.blur == (0.0, 1.0)
    assert "blur" not in pretrain_preset("cpu-small").to_json()["multicrop"]["augment"]  # the paper's runs resume
