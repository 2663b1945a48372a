import numpy as np
import pytest

from osteo_engine.cards import SegmenterCard
from osteo_engine.errors import ConfigError
from osteo_engine.ssl.data import PatchBank, bank_cache_name, cached_bone_banks


def test_a_cached_bank_is_not_reused_once_the_segmenter_draws_other_label_maps(tmp_path, monkeypatch):
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("subject_id,image,split\n1,a.png,train\n")
    card = SegmenterCard(model_config={}, input_size=[64, 80], epoch=3)
    offset = SegmenterCard(model_config={}, input_size=[64, 80], epoch=3, background_logit_offset=2.3)
    names = {bank_cache_name(manifest, 96, "patches", c) for c in (card, offset, None)}
    assert len(names) == 3
    assert bank_cache_name(manifest, 96, "patches", card) == bank_cache_name(manifest, 96, "patches", card)
    monkeypatch.setattr("osteo_engine.ssl.data.BANK_SAMPLES", 4)  # the banks made before samples were cut
    assert bank_cache_name(manifest, 96, "patches", card) not in names


def _bank(subjects: int) -> PatchBank:
    n = 2 * subjects
    return PatchBank(
        patches=np.zeros((n, 8, 8), np.float32),
        bones=np.array(["M2", "M3"] * subjects),
        subjects=np.repeat([f"s{i}" for i in range(subjects)], 2),
        labels=np.zeros(n, int),
        splits=np.array(["train"] * n),
        images=np.repeat([f"s{i}.dcm" for i in range(subjects)], 2),
        skipped=[],
    )


def test_a_finished_experiments_bone_banks_come_back_internal_cohort_first(tmp_path):
    with pytest.raises(ConfigError, match="no cached bone-patch bank"):
        cached_bone_banks(tmp_path)
    _bank(5).save(tmp_path / "patches-patches-64-bbbb.npz")
    _bank(2).save(tmp_path / "patches-patches-64-aaaa.npz")
    _bank(9).save(tmp_path / "patches-raw-64-cccc.npz")  # radiograph squares, not bones
    banks = cached_bone_banks(tmp_path)
    assert [len(np.unique(b.subjects)) for b in banks] == [2, 5]
