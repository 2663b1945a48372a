"""The editing model behind the annotation canvas: every kind of edit undoes and redoes exactly."""

import numpy as np
import pytest

from app.document import ImageDocument, Prompts
from osteo_engine.anatomy import BONE_IDS


def _state(doc):
    return doc.labels.copy(), doc.working.copy(), doc.bone, doc.prompts, dict(doc.bone_prompts)


def _same(a, b):
    return (a[0] == b[0]).all() and (a[1] == b[1]).all() and a[2:] == b[2:]


def _square(shape, y0, y1, x0, x1):
    mask = np.zeros(shape, bool)
    mask[y0:y1, x0:x1] = True
    return mask


def test_every_kind_of_edit_round_trips_through_undo_and_redo():
    saved = []
    doc = ImageDocument((60, 80), on_labels_changed=lambda d: saved.append(d.labels.copy()))
    states = [_state(doc)]
    prompts = Prompts(((10.0, 12.0, True),), (5.0, 5.0, 20.0, 25.0))
    doc.set_prompts(prompts)
    assert doc.apply_prompt_mask(prompts, _square((60, 80), 5, 25, 5, 20))
    states.append(_state(doc))
    doc.begin_stroke(erase=False)
    doc.paint(30, 30, 3)
    doc.paint(33, 30, 3)
    doc.end_stroke()
    states.append(_state(doc))
    doc.begin_stroke(erase=True)
    doc.paint(10, 10, 2)
    doc.end_stroke()
    states.append(_state(doc))
    assert doc.accept()
    states.append(_state(doc))
    doc.select_bone(BONE_IDS["M2"])
    states.append(_state(doc))
    doc.set_prompts(Prompts(((50.0, 40.0, True),)))
    states.append(_state(doc))
    doc.clear_prompts()
    states.append(_state(doc))
    prediction = np.zeros((60, 80), np.uint8)
    prediction[40:55, 60:70] = BONE_IDS["M3"]
    prediction[15:20, 12:18] = BONE_IDS["radius"]  # on the accepted ulna: must not overwrite it
    assert doc.propose(prediction) == [BONE_IDS["M3"]]
    states.append(_state(doc))
    assert doc.history() == ["prompt", "brush", "erase", "accept", "bone", "prompt", "clear", "propose"]
    assert (doc.labels[15:20, 12:18] == BONE_IDS["ulna"]).all()
    for expected in reversed(states[:-1]):
        assert doc.undo()
        assert _same(_state(doc), expected)
    assert not doc.undo()
    for expected in states[1:]:
        assert doc.redo()
        assert _same(_state(doc), expected)
    assert not doc.redo()
    assert saved and (saved[-1] == doc.labels).all()  # every label change reached the store callback


def test_a_late_sam_answer_for_old_prompts_is_ignored():
    doc = ImageDocument((20, 20))
    first = Prompts(((5.0, 5.0, True),))
    doc.set_prompts(first)
    doc.set_prompts(Prompts(((5.0, 5.0, True), (9.0, 9.0, False))))
    assert not doc.apply_prompt_mask(first, np.ones((20, 20), bool))
    assert not doc.working.any()


def test_brush_and_eraser_change_exactly_the_painted_pixels():
    doc = ImageDocument((50, 50))
    doc.begin_stroke(erase=False)
    doc.paint(20, 25, 4)
    doc.end_stroke()
    yy, xx = np.mgrid[:50, :50]
    disc = (xx - 20) ** 2 + (yy - 25) ** 2 <= 16
    assert (doc.working == disc).all()
    doc.begin_stroke(erase=True)
    doc.paint(20, 25, 2)
    doc.end_stroke()
    hole = (xx - 20) ** 2 + (yy - 25) ** 2 <= 4
    assert (doc.working == (disc & ~hole)).all()
    assert not doc.labels.any()  # nothing is accepted until Enter


def test_accept_replaces_the_bone_and_keeps_its_prompts():
    doc = ImageDocument((30, 30))
    p = Prompts(((3.0, 4.0, True), (8.0, 8.0, False)), (1.0, 1.0, 12.0, 12.0))
    doc.set_prompts(p)
    doc.apply_prompt_mask(p, _square((30, 30), 1, 12, 1, 12))
    doc.accept()
    assert doc.bone_prompts["ulna"].box == (1.0, 1.0, 12.0, 12.0)
    assert doc.bone_prompts["ulna"].points == [(3.0, 4.0, True), (8.0, 8.0, False)]
    assert doc.prompts.empty and (doc.labels == 1).sum() == 121
    with pytest.raises(ValueError):
        doc.select_bone(9)


def test_a_prompt_and_its_mask_undo_in_one_step_and_history_is_bounded():
    doc = ImageDocument((10, 10))
    p = Prompts(((2.0, 2.0, True),))
    doc.set_prompts(p)
    doc.apply_prompt_mask(p, _square((10, 10), 0, 4, 0, 4))
    doc.apply_prompt_mask(p, _square((10, 10), 5, 9, 5, 9))  # SAM refined the same prompts again
    doc.undo()
    assert doc.prompts.empty and not doc.working.any()
    for i in range(260):
        doc.set_prompts(Prompts(((float(i % 10), 1.0, True),)))
    assert len(doc.history()) == 200
