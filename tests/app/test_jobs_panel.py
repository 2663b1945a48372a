"""The Jobs panel: a tiny CPU job run to the end, cancelled and resumed, and seen again by a new window."""

import json
import os
import signal
import sys

import pytest

pytest.importorskip("pytestqt")
from PySide6 import QtCore  # noqa: E402

from app.jobs_panel.panel import JOB_NICENESS  # noqa: E402
from app.jobs_panel.records import launch_command, read_status, resume_command  # noqa: E402
from app.settings import AppSettings  # noqa: E402
from app.window import MainWindow  # noqa: E402

TINY = ["--input-size", "64", "96"]
JOB_MS = 240_000


@pytest.fixture
def make_window(qtbot, tmp_path):
    def make():
        store = QtCore.QSettings(str(tmp_path / "settings.ini"), QtCore.QSettings.IniFormat)
        window = MainWindow(AppSettings(rater="alice"), store, runs=tmp_path / "runs")
        qtbot.addWidget(window)
        return window

    return make


def test_the_launch_command_is_the_cli_with_progress_events(tmp_path):
    command = launch_command("segment train", ["a.csv"], tmp_path / "run", "cpu-small", ["--epochs", "2"])
    assert command[1:5] == ["-m", "training_cli.main", "segment", "train"] and "--progress-json" in command
    assert command[command.index("--preset") + 1] == "cpu-small"
    assert resume_command(command)[-1] == "--resume" and resume_command(resume_command(command)) == resume_command(
        command
    )
    export = launch_command("export-screening", ["m.csv"], tmp_path / "model", "cpu-small", ["--encoder", "e"])
    assert export[3] == "export-screening" and "--preset" not in export  # it takes the encoder's, not a preset
    with pytest.raises(ValueError, match="unknown job"):
        launch_command("format disk", [], tmp_path)
    probe = launch_command("probe", ["m.csv"], tmp_path / "probe", None, ["--encoder", "e"])
    assert resume_command(probe) == probe  # it takes no --resume: it is run again
    errors = launch_command("segment fit-errors", ["m.csv"], tmp_path / "job", None, ["--model", "s.safetensors"])
    assert "--out" not in errors and errors[3:5] == ["segment", "fit-errors"]  # the map goes beside its model
    assert resume_command(errors) == errors


def test_a_run_folder_without_a_final_line_and_without_its_process_died(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "job.json").write_text(json.dumps({"command": ["x"], "pid": 2**22 + 12345, "started": 0}))
    (run / "job.out").write_text('{"event": "start", "done": 0, "total": 3}\n{"event": "epoch", "epoch": 1, "done": 1')
    (run / "job.err").write_text("Killed\n")
    status = read_status(run)
    assert status.state == "died" and status.done == 0 and "Killed" in status.log_tail


@pytest.mark.skipif(not hasattr(os, "getpriority"), reason="POSIX priorities")
def test_jobs_run_at_a_lower_priority_than_the_app(make_window, tmp_path):
    jobs = make_window().jobs
    run = tmp_path / "runs" / "sleeper"
    jobs._launch(run, [sys.executable, "-c", "import time; time.sleep(30)"])
    pid = json.loads((run / "job.json").read_text())["pid"]
    try:
        assert os.getpriority(os.PRIO_PROCESS, pid) >= min(os.getpriority(os.PRIO_PROCESS, 0) + JOB_NICENESS, 19)
    finally:
        os.kill(pid, signal.SIGKILL)


@pytest.mark.slow
def test_a_tiny_job_runs_to_the_end_is_cancelled_and_resumed_and_a_new_window_sees_it(make_window, small_cohort, qtbot):
    window = make_window()
    jobs = window.jobs
    data = [str(small_cohort / "manifest.csv")]
    run = jobs.start_job("segment train", data, "cpu-small", ["--epochs", "1", *TINY])
    qtbot.waitUntil(lambda: read_status(run).state == "finished", timeout=JOB_MS)
    jobs.refresh()
    jobs.select(run)
    assert jobs.selected().epochs and jobs.curves.listDataItems()  # its loss curve is drawn
    fit = jobs.fit_error_map_selected()  # the segmenter's error map, fitted on the data it was trained on
    qtbot.waitUntil(lambda: read_status(fit).state in ("finished", "failed"), timeout=JOB_MS)
    assert read_status(fit).state == "finished", read_status(fit).log_tail
    assert (run / "checkpoints" / "best.errors.safetensors").exists()
    jobs.refresh()
    jobs.select(fit)
    assert jobs.fit_error_map_selected() is None  # only a segmenter run has an error map to fit
    long = jobs.start_job("segment train", data, "cpu-small", ["--epochs", "3", *TINY])
    qtbot.waitUntil(lambda: len(read_status(long).epochs) >= 1, timeout=JOB_MS)
    jobs.refresh()
    jobs.select(long)
    jobs.cancel_selected()
    qtbot.waitUntil(lambda: read_status(long).state == "cancelled", timeout=JOB_MS)
    assert (long / "checkpoints" / "last.safetensors").exists()
    jobs.refresh()
    jobs.select(long)
    jobs.resume_selected()
    qtbot.waitUntil(lambda: read_status(long).state == "finished", timeout=JOB_MS)
    assert [e["epoch"] for e in read_status(long).epochs][-1] == 3
    reopened = make_window().jobs
    assert {s.run.name: s.state for s in reopened.statuses.values()} == {
        run.name: "finished",
        fit.name: "finished",
        long.name: "finished",
    }
    assert reopened.selected().run == long and reopened.curves.listDataItems()  # the newest run is shown


def test_a_finished_export_screening_run_becomes_the_screening_model_and_the_bundled_ones_come_back(
    make_window, tmp_path
):
    import shutil

    from osteo_engine.screening_model import MODELS

    run = tmp_path / "runs" / "export-1"
    shutil.copytree(MODELS / "screening", run)
    command = launch_command("export-screening", ["m.csv"], run, None, ["--encoder", "e"])
    (run / "job.json").write_text(json.dumps({"command": command, "pid": 2**22 + 12345, "started": 0}))
    (run / "job.out").write_text(json.dumps({"event": "done", "model": str(run)}) + "\n")
    window = make_window()
    messages = []
    window.jobs.message.connect(messages.append)
    window.jobs.refresh()
    window.jobs.select(run)
    window.jobs.buttons["activate"].click()
    assert window.screen.model_sources == (run, None)
    assert window.screen.model().names["probe"]  # the chosen folder loads as a screening model
    window.use_bundled_models()
    assert window.screen.model_sources == (None, None)
    (run / "probe.safetensors").unlink()  # no longer a model: refused with a message, the bundled ones stay
    window.jobs.buttons["activate"].click()
    assert window.screen.model_sources == (None, None) and "export-screening" in messages[-1]
