"""The training scaffold: cancellation at any step keeps what was saved, and a resume ends where an
uninterrupted run ends; the CLI turns signals into cancellation and events into JSON lines."""

import json
import signal
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from osteo_engine.events import Cancelled, CancelToken, Event
from osteo_engine.segmentation.train import train_segmenter

from .conftest import REPO
from .segmentation.test_train import tiny_config


class _CancelAfter(CancelToken):
    """Cancels itself at the given step: mid-epoch, where a signal may come."""

    def __init__(self, steps: int):
        super().__init__()
        self.steps = steps

    def check(self, what: str = "the job") -> None:
        self.steps -= 1
        if self.steps < 0:
            self.cancel()
        super().check(what)


def test_a_run_cancelled_mid_epoch_and_resumed_ends_with_the_uninterrupted_weights(small_cohort, tmp_path):
    data = [small_cohort / "manifest.csv"]
    straight = train_segmenter(data, tmp_path / "a", tiny_config(3))
    steps_per_epoch = 3  # 9 training images of the small cohort in batches of 4
    seen = []
    with pytest.raises(Cancelled, match="--resume"):
        train_segmenter(
            data, tmp_path / "b", tiny_config(3), events=seen.append, cancel=_CancelAfter(steps_per_epoch + 1)
        )  # in the middle of epoch 2
    assert [e.epoch for e in seen if e.kind == "epoch"] == [1]
    assert (tmp_path / "b" / "checkpoints" / "last.safetensors").exists()
    resumed = []
    train_segmenter(data, tmp_path / "b", tiny_config(3), resume=True, events=resumed.append)
    assert [e.kind for e in resumed][0] == "start" and resumed[0].done == 1 and resumed[-1].kind == "done"
    a = load_file(straight.run / "checkpoints" / "last.safetensors")
    b = load_file(tmp_path / "b" / "checkpoints" / "last.safetensors")
    for key in a:
        torch.testing.assert_close(a[key], b[key])


def test_events_are_json_objects_named_by_kind():
    assert Event("epoch", "pretraining", epoch=2, done=2, total=5, metrics={"loss": 1.5}).to_json() == {
        "event": "epoch",
        "task": "pretraining",
        "epoch": 2,
        "done": 2,
        "total": 5,
        "metrics": {"loss": 1.5},
    }
    with pytest.raises(ValueError):
        Event("finished")


@pytest.mark.slow
def test_sigint_stops_osteo_segment_train_keeps_its_checkpoint_and_resume_finishes(small_cohort, tmp_path):
    args = [
        sys.executable,
        "-m",
        "training_cli",
        "segment",
        "train",
        "--data",
        str(small_cohort / "manifest.csv"),
        "--out",
        str(tmp_path / "run"),
        "--epochs",
        "4",
        "--input-size",
        "64",
        "96",
        "--progress-json",
    ]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    lines = []
    for line in proc.stdout:
        lines.append(json.loads(line))
        if lines[-1]["event"] == "epoch":
            proc.send_signal(signal.SIGINT)  # stops at the next step, in epoch 2
            break
    lines += [json.loads(line) for line in proc.stdout]
    assert proc.wait(timeout=300) == 130, proc.stderr.read()
    assert lines[0]["event"] == "start" and lines[-1]["event"] == "cancelled" and "cancelled" in lines[-1]["message"]
    assert (tmp_path / "run" / "checkpoints" / "last.safetensors").exists()
    epochs_done = max(line["epoch"] for line in lines if line["event"] == "epoch")
    done = subprocess.run(args + ["--resume"], capture_output=True, text=True, cwd=REPO)
    events = [json.loads(line) for line in done.stdout.splitlines()]
    assert done.returncode == 0, done.stderr
    assert events[-1]["event"] == "done" and events[-1]["path"] == str(tmp_path / "run")
    assert [e["epoch"] for e in events if e["event"] == "epoch"] == list(range(epochs_done + 1, 5))
