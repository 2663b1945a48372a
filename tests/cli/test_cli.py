import json
import os
import subprocess
import sys
from pathlib import Path

from ..conftest import REPO, SAMPLE_DICOM


def osteo(*args, check=True):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-m", "training_cli", *map(str, args)], capture_output=True, text=True, env=env, cwd=REPO
    )
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def test_inspect_json_prints_exactly_one_document():
    proc = osteo("inspect", SAMPLE_DICOM, "--json")
    info = json.loads(proc.stdout)  # raises if there is anything but one JSON document
    assert info["width"] == 1024 and info["height"] == 1280 and info["bits_stored"] == 12
    assert info["modality"] == "DX" and info["photometric"] == "MONOCHROME2"
    assert len(info["pixel_spacing_mm"]) == 2 and set(info["window"]) == {"center", "width"}


def test_inspect_plain_text_and_shared_jpeg(shared_data):
    proc = osteo("inspect", shared_data / "hand-atlas" / "images" / "3143.jpg", "--json")
    assert json.loads(proc.stdout)["pixel_spacing_mm"] is None
    assert "pixels" in osteo("inspect", SAMPLE_DICOM).stdout


def test_bad_input_exits_non_zero_with_a_sentence(tmp_path):
    bad = tmp_path / "broken.dcm"
    bad.write_bytes(b"nonsense" * 20)
    proc = osteo("inspect", bad, "--json", check=False)
    assert proc.returncode == 2 and proc.stdout == ""
    assert "broken.dcm" in proc.stderr and "Traceback" not in proc.stderr


def test_phantom_oracle_cohort_export_import(tmp_path):
    proc = osteo("phantom", tmp_path / "c", "--subjects", 20, "--seed", 2, "--size", "192x240", "--raters", 2, "--json")
    out = json.loads(proc.stdout)
    assert out["subjects"] == 20 and Path(out["manifest"]).is_file()
    oracle = json.loads(osteo("oracle", tmp_path / "c", "--json").stdout)
    assert 0.5 < oracle["auc"] <= 1.0 and oracle["fresh_subjects"] == 2000
    summary = json.loads(osteo("cohort", tmp_path / "c" / "manifest.csv", "--json").stdout)
    assert summary["subjects"] == 20 and sum(summary["splits"].values()) == 20
    exported = json.loads(
        osteo("export", tmp_path / "c", "--format", "coco", "--out", tmp_path / "c.json", "--json").stdout
    )
    assert len(exported["written"]) == 1
    osteo("export", tmp_path / "c", "--format", "png", "--out", tmp_path / "png")
    imported = json.loads(
        osteo(
            "import",
            tmp_path / "c",
            "--format",
            "png",
            "--source",
            tmp_path / "png" / "rater1",
            "--rater",
            "copy",
            "--json",
        ).stdout
    )
    assert len(imported["imported"]) == 20


def test_phantom_rejects_bad_size(tmp_path):
    proc = osteo("phantom", tmp_path / "c", "--subjects", 2, "--size", "big", check=False)
    assert proc.returncode == 2 and "WIDTHxHEIGHT" in proc.stderr


def test_contact_sheet_with_real_radiographs(small_cohort, shared_data, tmp_path):
    real = sorted((shared_data / "hand-atlas" / "images").glob("*.jpg"))[:2]
    osteo("contact-sheet", small_cohort, "--out", tmp_path / "sheet.png", "--count", 8, "--real", *real)
    import cv2

    sheet = cv2.imread(str(tmp_path / "sheet.png"), cv2.IMREAD_UNCHANGED)
    assert sheet.shape[0] > 3 * 320 and sheet.shape[1] == 4 * 256


def test_the_cli_only_translates_arguments_into_engine_calls():
    """No array, model or metric library in training_cli/, and no command function over 30 lines (argument
    parser builders aside): the science lives in osteo_engine, where the app calls the same functions."""
    import ast

    heavy = {"torch", "numpy", "cv2", "sklearn", "scipy", "pydicom"}
    for path in sorted((REPO / "training_cli").glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                assert not {n.split(".")[0] for n in names} & heavy, f"{path.name}:{node.lineno} imports {names}"
            if isinstance(node, ast.FunctionDef) and not node.name.startswith(("add_", "build_parser")):
                assert node.end_lineno - node.lineno < 30, f"{path.name}: {node.name} is over 30 lines"


def test_choices_come_from_the_engine_registries():
    from osteo_engine import registry
    from osteo_engine.experiments import TABLES
    from osteo_engine.segmentation.train import PRESETS as SEGMENT_PRESETS
    from osteo_engine.ssl.methods import METHODS
    from osteo_engine.ssl.pretrain import PRESETS as PRETRAIN_PRESETS
    from training_cli.main import build_parser

    parser = build_parser()
    actions = {a.dest: a for a in parser._subparsers._group_actions[0].choices["experiment"]._actions}
    assert tuple(actions["methods"].choices) == METHODS == registry.SSL_METHODS
    assert tuple(actions["tables"].choices) == TABLES and tuple(actions["preset"].choices) == tuple(SEGMENT_PRESETS)
    assert tuple(PRETRAIN_PRESETS) == registry.PRESETS


def test_segment_train_options_reach_the_engine_request():
    from osteo_engine.segmentation.jobs import SegmentTrainRequest
    from training_cli.main import build_parser
    from training_cli.output import request_from

    args = build_parser().parse_args(
        ["segment", "train", "--data", "a.csv", "b.csv", "--out", "run", "--samples", "4", "--repeat", "1", "2"]
        + ["--module-cap", "0.5", "--module-share", "0.34", "--latent-size", "2", "--background-weight", "1"]
    )
    request = request_from(SegmentTrainRequest, args)
    assert request.module_cap == 0.5 and request.module_share == 0.34 and request.latent_size == 2
    assert request.background_weight == 1.0
    assert request.samples == 4 and request.repeat == (1, 2) and request.data == (Path("a.csv"), Path("b.csv"))
    plain = build_parser().parse_args(["segment", "train", "--data", "a", "--out", "r"])
    assert request_from(SegmentTrainRequest, plain).samples is None  # the preset's S


def test_fit_errors_options_reach_the_engine_request_and_defaults_stay_the_engines():
    from osteo_engine.segmentation.error_fit import ErrorMapRequest
    from training_cli.main import build_parser
    from training_cli.output import request_from

    args = build_parser().parse_args(
        ["segment", "fit-errors", "--data", "a.csv", "b.csv", "--model", "m.safetensors", "--epochs", "2"]
    )
    request = request_from(ErrorMapRequest, args)
    assert request.data == (Path("a.csv"), Path("b.csv")) and request.model == Path("m.safetensors")
    assert request.epochs == 2 and request.out is None
    assert request.pixels_per_manifest == ErrorMapRequest(data=()).pixels_per_manifest


def test_probe_radiogrammetry_option_reaches_the_engine_request():
    from osteo_engine import registry
    from osteo_engine.ssl.probing import ProbeRequest
    from training_cli.main import build_parser
    from training_cli.output import request_from

    parser = build_parser()
    args = parser.parse_args(["probe", "--encoder", "e", "--data", "d.csv", "--out", "o", "--radiogrammetry", "auto"])
    assert request_from(ProbeRequest, args).radiogrammetry == "auto"
    plain = parser.parse_args(["probe", "--encoder", "e", "--data", "d.csv", "--out", "o"])
    assert request_from(ProbeRequest, plain).radiogrammetry == "off"
    actions = {a.dest: a for a in parser._subparsers._group_actions[0].choices["probe"]._actions}
    assert tuple(actions["radiogrammetry"].choices) == registry.PROBE_INDICES


def test_experiment_ablations_reach_the_pretraining_preset():
    from osteo_engine.ssl.pretrain import pretrain_preset
    from training_cli.main import build_parser
    from training_cli.ssl_commands import experiment_overrides

    base = ["experiment", "--data", "d.csv", "--out", "o"]
    ablations = ["--gamma-jitter", "0.25", "--noise", "0.02", "--blur", "1", "--positives", "subject"]
    ablations += ["--contrast-jitter", "0", "--stem", "cifar"]
    overrides = experiment_overrides(build_parser().parse_args(base + ablations))
    assert overrides == dict(
        contrast_jitter=0.0, gamma_jitter=0.25, noise=0.02, blur=1.0, positives="subject", stem="cifar"
    )
    config = pretrain_preset("cpu-small", **overrides)
    assert config.positives == "subject" and config.multicrop.augment.noise == (0.0, 0.02)
    assert config.multicrop.augment.blur == (0.0, 1.0)
    assert config.method.stem == "cifar"
    assert experiment_overrides(build_parser().parse_args(base)) == {}
