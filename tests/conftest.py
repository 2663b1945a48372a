import os
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# the app's settings and per-user projects go to a scratch home, never the tester's own
_SCRATCH = Path(tempfile.mkdtemp(prefix="osteo-tests-"))
os.environ["XDG_CONFIG_HOME"] = str(_SCRATCH / "config")
os.environ["XDG_DATA_HOME"] = str(_SCRATCH / "data")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
SAMPLE_DICOM = REPO / "resources" / "samples" / "phantom_hand.dcm"


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not beside the repository")
    return SHARED_DATA


@pytest.fixture(scope="session")
def small_cohort(tmp_path_factory):
    """A 12-subject phantom cohort at a small size, shared by the tests that only read it."""
    from osteo_engine.phantom import PhantomConfig, write_cohort

    out = tmp_path_factory.mktemp("cohort")
    write_cohort(out, PhantomConfig(12, seed=3, raters=3, size=(256, 320)), workers=1)
    return out


@pytest.fixture(scope="session")
def tiny_segmenter(tmp_path_factory):
    """A small segmenter trained briefly on a phantom cohort: enough to propose bones and make patches."""
    from dataclasses import replace

    from osteo_engine.cards import SegmenterCard
    from osteo_engine.phantom import PhantomConfig, write_cohort
    from osteo_engine.runs import load_model, write_model
    from osteo_engine.segmentation.model import SegmenterConfig
    from osteo_engine.segmentation.train import segment_preset, train_segmenter

    root = tmp_path_factory.mktemp("segmenter")
    write_cohort(root / "cohort", PhantomConfig(8, seed=5, raters=1, size=(256, 320)), workers=1)
    config = replace(
        segment_preset("cpu-small"),
        input_size=(128, 160),
        epochs=6,
        batch_size=4,
        samples=1,
        val_samples=1,
        lr=5e-3,
        model=SegmenterConfig(base_channels=8, depth=3, modules=2, head_channels=8),
    )
    result = train_segmenter([root / "cohort" / "manifest.csv"], root / "run", config)
    # 6 epochs leave the bones' probabilities low: with the background logit offset that a trained model's card
    # carries, this one would find no bone, and the tests that read its bones would have none
    state, card = load_model(result.run / "checkpoints" / "last.safetensors", SegmenterCard)
    return write_model(root / "tiny.safetensors", state, card.with_changes(background_logit_offset=0.0))


def dciodvfy_errors(path: Path) -> list[str]:
    """The "Error" lines of dicom3tools' DICOM validator on `path`. CI installs it (.ci/run sets
    OSTEO_REQUIRE_DCIODVFY); elsewhere a missing validator skips the check."""
    import shutil
    import subprocess

    if shutil.which("dciodvfy") is None:
        if os.environ.get("OSTEO_REQUIRE_DCIODVFY"):
            pytest.fail("dciodvfy (Debian's dicom3tools) is not installed")
        pytest.skip("dciodvfy (Debian's dicom3tools) is not installed")
    done = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=60)
    return [line for line in (done.stdout + done.stderr).splitlines() if line.startswith("Error")]
