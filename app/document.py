"""One image's annotation under edit, for one rater, with an undo history that covers every edit.

There is no Qt here: the canvas and workspace call these methods and redraw. State:

- `labels`: the accepted label map (what the store holds);
- `bone`: the bone being edited, `working`: its mask under edit, `prompts`: the SAM prompts behind it;
- `bone_prompts`: the prompts that made each accepted bone (saved with the record).

Every change is one `Edit` holding the prompts and bone before and after, plus the changed rectangle of each
array, so a brush stroke on a 2515×3588 image costs only the pixels it touched.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import numpy as np

from osteo_engine.anatomy import BONES
from osteo_engine.annotations import BonePrompts

HISTORY_LIMIT = 200


@dataclass(frozen=True)
class Prompts:
    points: tuple[tuple[float, float, bool], ...] = ()  # (x, y, positive)
    box: tuple[float, float, float, float] | None = None

    @property
    def empty(self) -> bool:
        return not self.points and self.box is None

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        xy = np.array([(x, y) for x, y, _ in self.points], float).reshape(-1, 2)
        labels = np.array([int(p) for _, _, p in self.points], int)
        return xy, labels, None if self.box is None else np.array(self.box, float)


@dataclass
class _Patch:
    array: str  # "labels" or "working"
    window: tuple[int, int, int, int]  # y0, y1, x0, x1
    before: np.ndarray
    after: np.ndarray


@dataclass
class Edit:
    kind: str  # prompt, brush, erase, clear, accept, propose, bone
    bone: tuple[int, int]  # before, after
    prompts: tuple[Prompts, Prompts]
    patches: list[_Patch] = field(default_factory=list)
    bone_prompts: tuple[dict, dict] | None = None

    @property
    def changes_labels(self) -> bool:
        return any(p.array == "labels" for p in self.patches)


def _patch(name: str, before: np.ndarray, after: np.ndarray) -> _Patch | None:
    changed = before != after
    rows, cols = np.flatnonzero(changed.any(1)), np.flatnonzero(changed.any(0))
    if not len(rows):
        return None
    y0, y1, x0, x1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    return _Patch(name, (y0, y1, x0, x1), before[y0:y1, x0:x1].copy(), after[y0:y1, x0:x1].copy())


class ImageDocument:
    def __init__(
        self,
        shape: tuple[int, int],
        labels: np.ndarray | None = None,
        bone_prompts: dict[str, BonePrompts] | None = None,
        on_labels_changed: Callable[[ImageDocument], None] | None = None,
    ):
        self.labels = np.zeros(shape, np.uint8) if labels is None else labels.astype(np.uint8).copy()
        self.bone = 1
        self.working = self.labels == self.bone
        self.prompts = Prompts()
        self.bone_prompts = dict(bone_prompts or {})
        self.on_labels_changed = on_labels_changed
        self._undo: list[Edit] = []
        self._redo: list[Edit] = []
        self._stroke: tuple[str, np.ndarray] | None = None
        self._last_dab: tuple[int, int] | None = None

    # ------------------------------------------------------------ queries
    @property
    def shape(self) -> tuple[int, int]:
        return self.labels.shape

    def bones_done(self) -> list[int]:
        return [v for v in BONES if (self.labels == v).any()]

    def can_undo(self) -> bool:
        return bool(self._undo)

    def can_redo(self) -> bool:
        return bool(self._redo)

    def history(self) -> list[str]:
        return [e.kind for e in self._undo]

    @property
    def stroking(self) -> bool:
        return self._stroke is not None

    # ------------------------------------------------------------ edits
    def select_bone(self, bone: int) -> None:
        """Edit another bone: its accepted mask becomes the working mask; unaccepted prompts are dropped."""
        if bone not in BONES:
            raise ValueError(f"no bone with label {bone}")
        if bone == self.bone:
            return
        self._change("bone", bone=bone, working=self.labels == bone, prompts=Prompts())

    def set_prompts(self, prompts: Prompts) -> None:
        """New prompts; the mask follows with `apply_prompt_mask` once SAM answers."""
        self._change("prompt", prompts=prompts)

    def apply_prompt_mask(self, prompts: Prompts, mask: np.ndarray) -> bool:
        """SAM's answer to `prompts`; ignored (False) when the prompts have changed since it was asked."""
        if prompts != self.prompts:
            return False
        last = self._undo[-1] if self._undo else None
        before = self.working.copy()
        self.working = mask.astype(bool)
        patch = _patch("working", before, self.working)
        if last is not None and last.kind == "prompt" and last.prompts[1] == prompts:
            self._merge(last, patch)  # one undo step removes the prompt and its mask together
        else:
            self._push(Edit("prompt", (self.bone, self.bone), (prompts, prompts), [patch] if patch else []))
        return True

    def clear_prompts(self) -> None:
        """Drop the prompts and go back to the bone's accepted mask."""
        self._change("clear", working=self.labels == self.bone, prompts=Prompts())

    def begin_stroke(self, erase: bool) -> None:
        self._stroke = ("erase" if erase else "brush", self.working.copy())
        self._last_dab = None

    def paint(self, x: float, y: float, radius: float) -> None:
        """One dab of the brush (or eraser) inside the current stroke, joined to the previous dab."""
        if self._stroke is None:
            raise RuntimeError("paint() outside begin_stroke()/end_stroke()")
        canvas = self.working.view(np.uint8)
        value = 0 if self._stroke[0] == "erase" else 1
        centre, r = (int(round(x)), int(round(y))), max(0, int(round(radius)))
        cv2.circle(canvas, centre, r, value, thickness=-1)
        if self._last_dab is not None and r > 0:
            cv2.line(canvas, self._last_dab, centre, value, thickness=2 * r + 1)
        self._last_dab = centre

    def end_stroke(self) -> None:
        if self._stroke is None:
            return
        kind, before = self._stroke
        self._stroke = None
        patch = _patch("working", before, self.working)
        if patch:
            self._push(Edit(kind, (self.bone, self.bone), (self.prompts, self.prompts), [patch]))

    def accept(self) -> bool:
        """Write the working mask into the label map as the current bone (it wins over other bones)."""
        labels = self.labels.copy()
        labels[labels == self.bone] = 0
        labels[self.working] = self.bone
        if (labels == self.labels).all() and self.prompts.empty:
            return False
        prompts = dict(self.bone_prompts)
        if self.prompts.empty:
            prompts.pop(BONES[self.bone], None)
        else:
            xy, lab, box = self.prompts.arrays()
            prompts[BONES[self.bone]] = BonePrompts(
                [(x, y, bool(p)) for (x, y), p in zip(xy, lab)], None if box is None else tuple(box)
            )
        self._change("accept", labels=labels, prompts=Prompts(), bone_prompts=prompts)
        return True

    def propose(self, prediction: np.ndarray) -> list[int]:
        """Fill the bones not yet annotated from a predicted label map, only on background pixels."""
        labels = self.labels.copy()
        filled = []
        for value in BONES:
            if (labels == value).any():
                continue
            region = (prediction == value) & (labels == 0)
            if region.any():
                labels[region] = value
                filled.append(value)
        if filled:
            self._change("propose", labels=labels, working=labels == self.bone)
        return filled

    # ------------------------------------------------------------ history
    def undo(self) -> bool:
        return self._step(self._undo, self._redo, 0)

    def redo(self) -> bool:
        return self._step(self._redo, self._undo, 1)

    def _step(self, source: list[Edit], target: list[Edit], side: int) -> bool:
        self.end_stroke()
        if not source:
            return False
        edit = source.pop()
        for patch in edit.patches:
            y0, y1, x0, x1 = patch.window
            getattr(self, patch.array)[y0:y1, x0:x1] = patch.after if side else patch.before
        self.bone, self.prompts = edit.bone[side], edit.prompts[side]
        if edit.bone_prompts is not None:
            self.bone_prompts = dict(edit.bone_prompts[side])
        target.append(edit)
        if edit.changes_labels and self.on_labels_changed:
            self.on_labels_changed(self)
        return True

    def _change(
        self,
        kind: str,
        *,
        bone: int | None = None,
        working: np.ndarray | None = None,
        labels: np.ndarray | None = None,
        prompts: Prompts | None = None,
        bone_prompts=None,
    ):
        edit = Edit(
            kind,
            (self.bone, self.bone if bone is None else bone),
            (self.prompts, self.prompts if prompts is None else prompts),
        )
        if bone_prompts is not None:
            edit.bone_prompts = (dict(self.bone_prompts), dict(bone_prompts))
        for name, new in (("labels", labels), ("working", working)):
            if new is not None:
                patch = _patch(name, getattr(self, name), new)
                if patch:
                    edit.patches.append(patch)
        self._push(edit)
        self._apply(edit)

    def _apply(self, edit: Edit) -> None:
        for patch in edit.patches:
            y0, y1, x0, x1 = patch.window
            getattr(self, patch.array)[y0:y1, x0:x1] = patch.after
        self.bone, self.prompts = edit.bone[1], edit.prompts[1]
        if edit.bone_prompts is not None:
            self.bone_prompts = dict(edit.bone_prompts[1])
        if edit.changes_labels and self.on_labels_changed:
            self.on_labels_changed(self)

    def _merge(self, edit: Edit, patch: _Patch | None) -> None:
        if patch is not None:
            old = next((p for p in edit.patches if p.array == "working"), None)
            if old is not None:  # widen to the union of both windows, keeping the oldest "before"
                edit.patches.remove(old)
                patch = _union(old, patch, self.working)
            edit.patches.append(patch)

    def _push(self, edit: Edit) -> None:
        self._redo.clear()
        self._undo.append(edit)
        del self._undo[:-HISTORY_LIMIT]


def _union(old: _Patch, new: _Patch, current: np.ndarray) -> _Patch:
    """A patch covering both windows: `before` from the old patch (else current pixels), `after` = current."""
    y0, y1 = min(old.window[0], new.window[0]), max(old.window[1], new.window[1])
    x0, x1 = min(old.window[2], new.window[2]), max(old.window[3], new.window[3])
    after = current[y0:y1, x0:x1].copy()
    before = after.copy()
    ny0, ny1, nx0, nx1 = new.window
    before[ny0 - y0 : ny1 - y0, nx0 - x0 : nx1 - x0] = new.before
    oy0, oy1, ox0, ox1 = old.window
    before[oy0 - y0 : oy1 - y0, ox0 - x0 : ox1 - x0] = old.before
    return _Patch("working", (y0, y1, x0, x1), before, after)


__all__ = ["Edit", "ImageDocument", "Prompts"]
