import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from osteo_engine.annotations import AnnotationProject, BonePrompts, RaterAnnotation
from osteo_engine.errors import AnnotationError

REPO = Path(__file__).resolve().parents[1]


def _labels(value_offset=0, shape=(40, 30)):
    labels = np.zeros(shape, np.uint8)
    for k in range(7):
        labels[2 + 5 * k : 5 + 5 * k, 3:20] = (k + value_offset) % 7 + 1
    return labels


def _project(tmp_path, n=2):
    images = []
    for i in range(n):
        path = tmp_path / "images" / f"hand{i}.png"
        path.parent.mkdir(exist_ok=True)
        cv2.imwrite(str(path), np.full((40, 30), 100 + i, np.uint8))
        images.append(path)
    return AnnotationProject.create(tmp_path / "proj", images)


def test_round_trip_with_raters_weights_and_prompts(tmp_path):
    project = _project(tmp_path)
    image_id = project.images[0].image_id
    prompts = {"M2": BonePrompts([(10.5, 12.0, True), (3.0, 4.0, False)], (1.0, 2.0, 20.0, 30.0))}
    project.save(image_id, RaterAnnotation("dr_a", _labels(0), weight=3.0, prompts=prompts, author="dr_a"))
    project.save(image_id, RaterAnnotation("dr_b", _labels(1), weight=1.0))
    reopened = AnnotationProject.open(tmp_path / "proj")
    annotations, problems = reopened.load(image_id)
    assert problems == []
    assert [r.rater for r in annotations.raters] == ["dr_a", "dr_b"]
    np.testing.assert_array_equal(annotations.raters[0].labels, _labels(0))
    np.testing.assert_allclose(annotations.weights, [0.75, 0.25])
    assert annotations.raters[0].prompts["M2"] == prompts["M2"]
    assert annotations.raters[0].updated  # who and when are recorded
    record = json.loads((tmp_path / "proj/annotations" / image_id / "dr_a.json").read_text())
    assert record["schema_version"] == 1 and record["author"] == "dr_a"


def test_weights_are_uniform_by_default(tmp_path):
    project = _project(tmp_path)
    image_id = project.images[0].image_id
    for rater in ("a", "b", "c"):
        project.save(image_id, RaterAnnotation(rater, _labels()))
    annotations, _ = project.load(image_id)
    np.testing.assert_allclose(annotations.weights, [1 / 3] * 3)


def test_label_map_on_disk_is_single_channel_8_bit_png(tmp_path):
    project = _project(tmp_path)
    image_id = project.images[0].image_id
    project.save(image_id, RaterAnnotation("a", _labels()))
    (png,) = (tmp_path / "proj/annotations" / image_id).glob("a.*.png")
    with Image.open(png) as im:
        assert im.mode == "L" and im.format == "PNG"


def test_invalid_label_maps_are_refused(tmp_path):
    project = _project(tmp_path)
    image_id = project.images[0].image_id
    with pytest.raises(AnnotationError, match="outside 0"):
        project.save(image_id, RaterAnnotation("a", np.full((4, 4), 9, np.uint8)))
    with pytest.raises(AnnotationError, match="2-D"):
        project.save(image_id, RaterAnnotation("a", np.zeros((4, 4, 3), np.uint8)))


def test_corrupt_file_is_reported_by_name_and_the_rest_loads(tmp_path):
    project = _project(tmp_path)
    first, second = (e.image_id for e in project.images)
    project.save(first, RaterAnnotation("a", _labels(0)))
    project.save(first, RaterAnnotation("b", _labels(2)))
    project.save(second, RaterAnnotation("a", _labels(3)))
    (png,) = (tmp_path / "proj/annotations" / first).glob("a.*.png")
    png.write_bytes(b"\x89PNG garbage")
    (tmp_path / "proj/annotations" / second / "a.json").write_text("{ not json")
    annotations, problems = AnnotationProject.open(tmp_path / "proj").load_all()
    assert [r.rater for r in annotations[first].raters] == ["b"]
    np.testing.assert_array_equal(annotations[first].raters[0].labels, _labels(2))
    named = " ".join(p.path + " " + p.message for p in problems)
    assert len(problems) == 2 and png.name in named and "a.json" in named


def test_full_disk_keeps_the_previous_version(tmp_path, monkeypatch):
    project = _project(tmp_path)
    image_id = project.images[0].image_id
    project.save(image_id, RaterAnnotation("a", _labels(0)))

    def no_space(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", no_space)
    with pytest.raises(AnnotationError, match="No space left.*unchanged"):
        project.save(image_id, RaterAnnotation("a", _labels(4)))
    monkeypatch.undo()
    annotations, problems = project.load(image_id)
    assert problems == []
    np.testing.assert_array_equal(annotations.raters[0].labels, _labels(0))
    assert not list((tmp_path / "proj/annotations" / image_id).glob(".*.tmp"))


WRITER = """
import sys, numpy as np
from osteo_engine.annotations import AnnotationProject, RaterAnnotation
project = AnnotationProject.open(sys.argv[1])
image_id = project.images[0].image_id
k = 0
while True:
    k += 1
    labels = np.full((300, 200), k % 7 + 1, np.uint8)
    labels[::7, ::5] = (k + 3) % 7 + 1  # make every version's PNG a little different in size
    project.save(image_id, RaterAnnotation("writer", labels, author=f"v-{k}"))
    print(k, flush=True)
"""


def test_killing_a_writer_at_random_moments_never_leaves_a_broken_annotation(tmp_path):
    project = _project(tmp_path, n=1)
    image_id = project.images[0].image_id
    rng = np.random.default_rng(0)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    checked = 0
    for _ in range(30):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path / "proj")], stdout=subprocess.PIPE, env=env)
        proc.stdout.readline()  # at least one version exists before the kill
        time.sleep(float(rng.uniform(0.0, 0.05)))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        annotations, problems = AnnotationProject.open(tmp_path / "proj").load(image_id)
        assert problems == []
        assert not list((tmp_path / "proj").rglob("*.tmp"))  # opening the project cleans what the kill left
        (rater,) = annotations.raters
        version = int(rater.author.split("-")[1])
        assert np.all(rater.labels[1::7, 1::5] == version % 7 + 1)  # label map belongs to its record
        assert np.all(rater.labels[::7, ::5] == (version + 3) % 7 + 1)
        checked += 1
    assert checked == 30


@pytest.mark.parametrize("first,second", [("dr kim", "dr_kim"), ("Dr.Lee", "Dr Lee"), ("kim", "Kim")])
def test_rater_names_that_share_a_file_never_replace_each_others_work(tmp_path, first, second):
    project = _project(tmp_path, n=2)
    image_id, other = (e.image_id for e in project.images)
    project.save(image_id, RaterAnnotation(first, _labels(0)))
    for target in (image_id, other):  # refused on the image the first rater annotated, and on any other
        with pytest.raises(AnnotationError, match="distinct rater name"):
            project.save(target, RaterAnnotation(second, _labels(1)))
    reopened = AnnotationProject.open(tmp_path / "proj")
    (kept,) = reopened.load(image_id)[0].raters
    assert kept.rater == first and np.array_equal(kept.labels, _labels(0))
    assert reopened.load(other)[0].raters == []
    reopened.save(other, RaterAnnotation(first, _labels(2)))  # the first rater goes on working as before
    assert [r.rater for r in reopened.load(other)[0].raters] == [first]


def test_raters_of_a_project_saved_before_names_were_registered_keep_their_files(tmp_path):
    project = _project(tmp_path, n=1)
    image_id = project.images[0].image_id
    project.save(image_id, RaterAnnotation("dr_kim", _labels(0)))
    (tmp_path / "proj" / "project.json").write_text(
        json.dumps(
            {k: v for k, v in json.loads((tmp_path / "proj" / "project.json").read_text()).items() if k != "raters"}
        )
    )
    legacy = AnnotationProject.open(tmp_path / "proj")
    with pytest.raises(AnnotationError, match="distinct rater name"):
        legacy.save(image_id, RaterAnnotation("dr kim", _labels(1)))
    legacy.save(image_id, RaterAnnotation("dr_kim", _labels(1)))
    assert np.array_equal(legacy.load(image_id)[0].raters[0].labels, _labels(1))


def test_a_live_writers_temporary_file_is_left_alone(tmp_path):
    project = _project(tmp_path, n=1)
    folder = tmp_path / "proj" / "annotations" / project.images[0].image_id
    folder.mkdir(parents=True)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        live = folder / f".alice.json.{sleeper.pid}.tmp"
        live.write_bytes(b"half written")
        dead = folder / f".alice.json.{_a_finished_pid()}.tmp"
        dead.write_bytes(b"left by a killed save")
        AnnotationProject.open(tmp_path / "proj")
        assert live.exists() and not dead.exists()
    finally:
        sleeper.kill()
        sleeper.wait()


def _a_finished_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)
