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
