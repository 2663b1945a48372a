"""Segment Anything behind one predictor: bundled LiteMedSAM or a user's vit_b / vit_l / vit_h checkpoint."""

from .checkpoints import SamModel, load_sam
from .predictor import BonePrompter, PromptResult

__all__ = ["BonePrompter", "PromptResult", "SamModel", "load_sam"]
