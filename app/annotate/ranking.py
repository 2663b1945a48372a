"""Ordering a project's images by the segmenter's image score, most likely wrong first (a background job)."""

from __future__ import annotations

from collections.abc import Callable

from osteo_engine import OsteoError, load_radiograph
from osteo_engine.annotations import AnnotationProject
from osteo_engine.sam.predictor import BonePrompter
from osteo_engine.segmentation.image_scores import IMAGE_SCORE, RANKING_SCORE, score_label
from osteo_engine.segmentation.predict import LoadedSegmenter, segment


def rank_images(
    project: AnnotationProject,
    ids: list[str],
    segmenter: LoadedSegmenter,
    load_prompter: Callable[[], BonePrompter],
    report: Callable[[tuple[str, float]], None],
    cancelled: Callable[[], bool],
    message: Callable[[str], None],
) -> str:
    """Report (image id, score) for each readable image of `ids`, scored by RANKING_SCORE with a SAM prompter of
    the ranking's own (the SAM worker's answers the annotator's clicks meanwhile); when SAM cannot be loaded,
    by IMAGE_SCORE, with a message. Images that cannot be read are skipped (the file list shows their error).
    Returns the score's name."""
    try:
        prompter = load_prompter()
    except OsteoError as error:
        message(f"Ordering by {score_label(IMAGE_SCORE)} alone: SAM could not be loaded ({error}).")
        prompter = None
    kind = RANKING_SCORE if prompter else IMAGE_SCORE
    for image_id in ids:
        if cancelled():
            break
        try:
            pixels = load_radiograph(project.image_path(image_id)).pixels
        except OsteoError:
            continue
        report((image_id, segment(pixels, segmenter, second_opinion=prompter).image_score(kind)))
    return kind
