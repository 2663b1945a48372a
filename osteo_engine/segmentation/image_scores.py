"""The image scores a refer policy can limit, by name, without importing the network.

Both are 1 − Dice estimates (0–1) of a segmentation's label map: "instability", against readings of the
image turned by a few degrees (stability.py), and "expected_error", against the model's own samples
(`Segmentation.expected_error`). The app's score, IMAGE_SCORE, orders the Annotate workspace's images and
sizes new refer policies; a policy records the score it was sized on, and one saved before it did limits the
expected error.
"""

IMAGE_SCORES = ("instability", "expected_error")
IMAGE_SCORE = "instability"  # atlas Spearman with 1 − Dice 0.43 against 0.27 on 91 images (README)
LEGACY_SCORE = "expected_error"  # what a refer policy saved without a score limits


def score_label(kind: str) -> str:
    """How reports and panels name a score: "instability", "expected error"."""
    return kind.replace("_", " ")
