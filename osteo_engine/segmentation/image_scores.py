"""The image scores a refer policy can limit, by name, without importing the network.

Each is a 1 − Dice estimate (0–1) of a segmentation's label map: "instability", against readings of the image
turned by a few degrees (stability.py); "expected_error", against the model's own samples
(`Segmentation.expected_error`); "sam_disagreement", against SAM's redraw of its bones, and "combined", the
geometric mean of the instability and the SAM disagreement (second_opinion.py). The last two need SAM, about
6 s an image on two cores.

RANKING_SCORE orders the Annotate workspace's images, where SAM is at hand (the workspace falls back on
IMAGE_SCORE when SAM cannot be loaded). IMAGE_SCORE sizes new refer policies: screening stays within its time
without SAM. A policy records the score it was sized on, and one saved before it did limits the expected error.
"""

# what each score is made from besides the label map and its samples: the turned readings ("instability") and
# SAM's redraw ("sam_disagreement"); `segment` makes those only when asked
MADE_FROM = {
    "instability": ("instability",),
    "expected_error": (),
    "sam_disagreement": ("sam_disagreement",),
    "combined": ("instability", "sam_disagreement"),
}
IMAGE_SCORES = tuple(MADE_FROM)
IMAGE_SCORE = "instability"  # atlas Spearman with 1 − Dice 0.43 against 0.27 on 91 images (README)
RANKING_SCORE = "combined"  # atlas Spearman 0.50 (91 train), 0.58 (21 val); instability 0.43, 0.37; not on phantoms
LEGACY_SCORE = "expected_error"  # what a refer policy saved without a score limits

LABELS = {"sam_disagreement": "SAM disagreement", "combined": "instability and SAM disagreement"}


def score_label(kind: str) -> str:
    """How reports and panels name a score: "instability", "expected error", "SAM disagreement"."""
    return LABELS.get(kind, kind.replace("_", " "))
