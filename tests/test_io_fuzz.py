"""A few hundred mutated DICOM, PNG and JPEG files: each loads or raises RadiographError within 5 s
(`make stress` runs thousands through the same code, tests/io_fuzz.py)."""

import pytest

from .io_fuzz import TIME_LIMIT_S, run


@pytest.mark.slow
def test_mutated_files_give_only_typed_errors_and_none_is_slow(tmp_path):
    outcomes = run(400, seed=12, folder=tmp_path)
    unexpected = [f"{o.name}: {o.unexpected}" for o in outcomes if o.unexpected]
    assert not unexpected
    slow = [f"{o.name}: {o.seconds:.1f} s" for o in outcomes if o.seconds > TIME_LIMIT_S]
    assert not slow
    refused = [o for o in outcomes if o.error]
    assert len(refused) > 100 and all(o.error.strip() for o in refused)  # the mutants do break files
