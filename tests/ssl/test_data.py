from osteo_engine.cards import SegmenterCard
from osteo_engine.ssl.data import bank_cache_name


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
