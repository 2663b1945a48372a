"""The names every registry of the engine answers to, importable without torch.

The engine's own registries (training presets, SSL methods, experiment tables, patch inputs, multi-crop modes)
are keyed by these tuples and check themselves against them when imported (`check_registry`), so the `osteo`
command can offer them as choices without loading the models' code.
"""

from __future__ import annotations

from collections.abc import Iterable

PRESETS = ("cpu-small", "paper")  # segmentation training and pretraining alike
SSL_METHODS = ("simclr", "supcon", "swav", "vicreg")
TABLES = ("1", "2", "3", "4")  # the paper's tables 1–4
PATCH_INPUTS = ("patches", "raw")  # bone patches, or raw radiograph squares (table 2)
MULTICROP_MODES = ("constrained", "conventional")
# pretraining's positive pairs: views of one patch (the paper), or half of them from another bone of its subject
POSITIVES = ("view", "subject")
# an SSL encoder's first layer: torchvision's (÷4), a 3×3 stride-2 convolution (÷2), or stride 1 (full detail)
STEMS = ("imagenet", "compact", "cifar")
# segmentation: lowest validation GED (MoSE), the same at the radiographs' full size, or highest mean Dice
CHECKPOINT_SELECTION = ("ged", "ged-full", "dice")
PROBE_PROTOCOLS = ("folds", "paper")  # subject-wise folds of train+val choose the probe, or the paper's val split
# the probe's inputs: the encoder's features alone, fused with the radiogrammetry indices, or whichever of the two
# scores the higher validation macro-F1
PROBE_INDICES = ("off", "on", "auto")
SAM_KINDS = ("litemedsam", "vit_b", "vit_l", "vit_h")  # the bundled LiteMedSAM, or a user's SAM checkpoint
REFINERS = ("none", "sam")  # segmentation: the network's maps alone, or each bone redrawn by LiteMedSAM


def check_registry(what: str, keys: Iterable[str], names: tuple[str, ...]) -> None:
    """ImportError (at import time, so a mismatch is found by any test) when `keys` are not `names`."""
    if tuple(keys) != names:
        raise ImportError(f"the {what} registry holds {tuple(keys)}, but osteo_engine.registry names {names}")
