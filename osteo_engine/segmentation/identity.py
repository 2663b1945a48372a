"""Metacarpal identities in anatomical order.

A network trained on few real hands often finds the five metacarpals but mixes up which is which
(M3 labelled M2, one bone split between two labels). The anatomy fixes the answer once the thumb side is
known: across the hand the metacarpals come as M1, M2, ..., M5. So each connected metacarpal part is
assigned one identity, by the order-preserving matching (in either direction across the hand) that keeps
the most of the network's own probability mass.
"""

from __future__ import annotations

import cv2
import numpy as np

FIRST_METACARPAL, METACARPALS = 3, 5  # label values 3..7 are M1..M5
MIN_PART_FRACTION = 0.0005  # parts smaller than this share of the image are left alone
MERGED_FACTOR = 1.7  # a part this much larger than the median part is probably two bones touching
MERGED_SHARE = 0.15  # a part where three or more identities each win this share of pixels is several bones


def _parts(probs: np.ndarray) -> tuple[np.ndarray, list[int], np.ndarray]:
    winner = probs.argmax(0)
    metacarpal = (winner >= FIRST_METACARPAL) & (winner < FIRST_METACARPAL + METACARPALS)
    count, components, stats, _ = cv2.connectedComponentsWithStats(metacarpal.astype(np.uint8), connectivity=8)
    areas = stats[:, cv2.CC_STAT_AREA]
    keep = [i for i in range(1, count) if areas[i] >= MIN_PART_FRACTION * winner.size]
    keep = sorted(keep, key=lambda i: -areas[i])[: 2 * METACARPALS]
    return components, keep, areas


def _across_hand_positions(components: np.ndarray, parts: list[int]) -> np.ndarray:
    """Each part's position along the axis across the hand (perpendicular to the mean bone direction)."""
    doubled, centres = np.zeros(2), []
    for i in parts:
        m = cv2.moments((components == i).astype(np.uint8), binaryImage=True)
        centres.append((m["m10"] / m["m00"], m["m01"] / m["m00"]))
        angle = 0.5 * np.arctan2(2 * m["mu11"], m["mu20"] - m["mu02"])
        doubled += m["m00"] * np.array([np.cos(2 * angle), np.sin(2 * angle)])  # axes are directions mod π
    along = 0.5 * np.arctan2(doubled[1], doubled[0])
    across = np.array([-np.sin(along), np.cos(along)])
    return np.asarray(centres) @ across


def _ordered_matching(scores: np.ndarray) -> tuple[float, list[tuple[int, int]]]:
    """Best order-preserving matching of parts (rows, in order) to identities (columns, in order)."""
    n, m = scores.shape
    best = np.zeros((n + 1, m + 1))
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            best[i, j] = max(best[i - 1, j], best[i, j - 1], best[i - 1, j - 1] + scores[i - 1, j - 1])
    pairs, i, j = [], n, m
    while i and j:
        if best[i, j] == best[i - 1, j]:
            i -= 1
        elif best[i, j] == best[i, j - 1]:
            j -= 1
        else:
            pairs.append((i - 1, j - 1))
            i, j = i - 1, j - 1
    return float(best[n, m]), pairs[::-1]


def order_metacarpals(probs: np.ndarray) -> np.ndarray:
    """probs (C, H, W) class probabilities -> a copy where each metacarpal part carries one identity,
    in anatomical order across the hand."""
    components, parts, areas = _parts(probs)
    if len(parts) < 2:
        return probs
    block = slice(FIRST_METACARPAL, FIRST_METACARPAL + METACARPALS)
    scores = np.stack([probs[block][:, components == i].sum(1) for i in parts])  # (parts, 5)
    # a part's whole mass as a bonus for matching it at all: a bone is never left out to keep another's label
    scores = scores + scores.sum(1, keepdims=True)
    order = np.argsort(_across_hand_positions(components, parts))
    forward = _ordered_matching(scores[order])
    backward = _ordered_matching(scores[order][:, ::-1])
    if forward[0] >= backward[0]:
        pairs = [(order[p], j) for p, j in forward[1]]
    else:
        pairs = [(order[p], METACARPALS - 1 - j) for p, j in backward[1]]
    median = np.median([areas[i] for i in parts])
    winner = probs[block].argmax(0)
    out = probs.copy()
    for p, identity in pairs:
        part = components == parts[p]
        shares = np.bincount(winner[part], minlength=METACARPALS) / part.sum()
        if (len(parts) >= 3 and areas[parts[p]] > MERGED_FACTOR * median) or (shares >= MERGED_SHARE).sum() >= 3:
            continue  # several bones in one part: relabelling it whole would lose all but one
        total = out[block][:, part].sum(0)
        for j in range(METACARPALS):
            out[FIRST_METACARPAL + j][part] = total if j == identity else 0.0
    return out
