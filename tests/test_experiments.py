"""`osteo experiment` end to end on a small phantom cohort: every table, results.json, report, resume."""

import json

import pytest

from osteo_engine.experiments import plan


def test_the_plan_has_one_supervised_run_per_seed_and_every_method_elsewhere():
    specs = plan(["simclr", "swav"], ["1", "3", "4"], [0, 1])
    assert [s.name for s in specs if s.seed == 0] == [
        "t1-simclr-s0",
        "t1-swav-s0",
        "t3-supervised-s0",
        "t4-simclr-s0",
        "t4-swav-s0",
    ]
    assert {s.source for s in specs} == {"patches"}
    assert plan(["simclr"], ["2"], [0])[0].source == "raw"
    with pytest.raises(Exception, match="unknown"):
        plan(["byol"], ["1"], [0])


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    from osteo_engine.phantom import PhantomConfig, write_cohort

    out = tmp_path_factory.mktemp("exp-cohort")
    write_cohort(out, PhantomConfig(30, seed=4, raters=1, size=(256, 320)), workers=1)
    return out


@pytest.fixture(scope="module")
def external(tmp_path_factory):
    """Another cohort (another seed): its subject IDs repeat the training cohort's, its images do not."""
    from osteo_engine.phantom import PhantomConfig, write_cohort

    out = tmp_path_factory.mktemp("exp-external")
    write_cohort(out, PhantomConfig(16, seed=5, raters=1, size=(256, 320)), workers=1)
    return out


def test_an_external_cohort_that_shares_images_with_the_data_is_refused_before_any_patch(cohort, tmp_path, capsys):
    import shutil

    from training_cli.main import main

    copy = tmp_path / "copy"
    shutil.copytree(cohort, copy)  # other paths, same images
    code = main(
        [
            "experiment",
            "--data",
            str(cohort / "manifest.csv"),
            "--out",
            str(tmp_path / "exp"),
            "--test-data",
            str(copy / "manifest.csv"),
            "--seeds",
            "0",
            "--methods",
            "simclr",
            "--tables",
            "1",
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "shares 30 image(s)" in err
    assert not (tmp_path / "exp" / "cache").exists()


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_osteo_experiment_writes_results_and_report_and_resumes(
    cohort, external, tiny_segmenter, tmp_path, capsys, monkeypatch
):
    from osteo_engine import experiments
    from osteo_engine.ssl.probe import encode
    from training_cli.main import main

    encoded = []
    monkeypatch.setattr(
        experiments, "encode", lambda enc, patches: encoded.append(len(patches)) or encode(enc, patches)
    )

    args = [
        "experiment",
        "--data",
        str(cohort / "manifest.csv"),
        "--out",
        str(tmp_path / "exp"),
        "--seeds",
        "0",
        "--methods",
        "simclr",
        "--tables",
        "1",
        "2",
        "3",
        "--segmenter",
        str(tiny_segmenter),
        "--epochs",
        "1",
        "--batch-size",
        "16",
        "--test-data",
        str(external / "manifest.csv"),
        "--json",
    ]
    assert main(args) == 0
    assert len(encoded) == 6  # each run's encoder reads the cohort and the external one once; the fused row reuses
    results = json.loads(capsys.readouterr().out)
    from osteo_engine.phantom import run_oracle

    assert results["oracle_auc"] == pytest.approx(run_oracle(cohort).auc)  # the cohort's own limit, reported
    assert [(r["table"], r["method"], r["variant"]) for r in results["runs"]] == [
        ("1", "simclr", "full"),
        ("1", "radiogrammetry", "radiogrammetry"),  # the indices alone, beside table 1
        ("1", "simclr+radiogrammetry", "fusion"),
        ("2", "simclr", "no-segmentation"),
        ("3", "supervised", "supervised"),
    ]
    for run in results["runs"]:
        assert set(run["metrics"]) == {"precision", "recall", "f1", "auc", "accuracy"}
        assert set(run["external"]) == set(run["metrics"])
        assert set(run["external_intervals_95"]) == set(run["metrics"])  # the external figures' intervals too
        low, high = run["external_intervals_95"]["auc"]
        assert low <= run["external"]["auc"] <= high
    on_disk = json.loads((tmp_path / "exp" / "results.json").read_text())
    assert on_disk["runs"] == results["runs"]
    report = (tmp_path / "exp" / "report.md").read_text()
    assert "Table 1" in report and "Table 2" in report and "Δ" in report and "research use only" in report
    assert "| simclr+radiogrammetry |" in report and "| radiogrammetry |" in report
    assert (tmp_path / "exp" / "roc.png").exists() and (tmp_path / "exp" / "bones.png").exists()
    stamp = (tmp_path / "exp" / "runs" / "t1-simclr-s0" / "result.json").stat().st_mtime_ns
    assert main(args) == 0  # finished runs are skipped
    assert (tmp_path / "exp" / "runs" / "t1-simclr-s0" / "result.json").stat().st_mtime_ns == stamp
    capsys.readouterr()
    # a partial report: the finished runs of a larger plan, the rest listed and not trained
    larger = args[: args.index("--methods")] + ["--methods", "simclr", "swav", "--finished-only"]
    larger += args[args.index("--tables") : args.index("--tables") + 2] + ["4"] + args[args.index("--segmenter") :]
    assert main(larger) == 0
    partial = json.loads(capsys.readouterr().out)
    assert partial["not_run"] == ["t1-swav-s0", "t4-simclr-s0", "t4-swav-s0"]
    assert [r["method"] for r in partial["runs"]] == ["simclr", "radiogrammetry", "simclr+radiogrammetry"]
    assert not (tmp_path / "exp" / "runs" / "t1-swav-s0").exists()
    report = (tmp_path / "exp" / "report.md").read_text()
    assert "## Not yet run" in report and "t4-swav-s0" in report and "| 1 | simclr | 0 |" in report
    # results committed without checkpoints, fused before RBD existed: kept, and the report says which indices
    runs = tmp_path / "exp" / "runs"
    (runs / "t1-simclr-s0" / "pretrain" / "checkpoints" / "last.safetensors").unlink()
    fused_row = runs / "t1-simclr+radiogrammetry-s0" / "result.json"
    older = json.loads(fused_row.read_text()) | {"config_hash": "fitted-before"}
    del older["indices"]
    fused_row.write_text(json.dumps(older))
    assert main(larger) == 0
    assert [r["method"] for r in json.loads(capsys.readouterr().out)["runs"]][-1] == "simclr+radiogrammetry"
    report = (tmp_path / "exp" / "report.md").read_text()
    assert "MCI, T, W, RMD of M1, M2, M3, M4, M5 in `simclr+radiogrammetry`" in report
    assert "the hand's MCI, RBD in `radiogrammetry`" in report
    other = [a if a != "16" else "8" for a in args]  # another batch size: the finished runs are not its runs
    assert main(other) == 2 and "made with other settings" in capsys.readouterr().err


@pytest.mark.parametrize(("name", "spec"), [("t1-simclr-s0", ("1", "simclr", 0)), ("t4-swav-s2", ("4", "swav", 2))])
def test_the_committed_runs_keep_their_settings_hash_as_ablation_options_are_added(name, spec):
    """`make phantom-tables` resumes from the runs in docs/results/phantom; a run whose hash no longer matches
    its settings would be refused as made with other settings."""
    from osteo_engine.experiments import RunSpec, _config_hash
    from osteo_engine.ssl.pretrain import pretrain_preset
    from osteo_engine.ssl.probe import ProbeConfig

    from .conftest import REPO

    spec = RunSpec(*spec)
    mode = "conventional" if spec.table == "4" else "constrained"
    config = pretrain_preset("cpu-small", spec.method, seed=spec.seed, source=spec.source, multicrop_mode=mode)
    recorded = json.loads((REPO / "docs/results/phantom/runs" / name / "result.json").read_text())["config_hash"]
    assert _config_hash(spec, config, ProbeConfig(seed=spec.seed), True) == recorded
