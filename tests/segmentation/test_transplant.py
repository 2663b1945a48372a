import pytest
import torch

from osteo_engine.errors import ConfigError
from osteo_engine.segmentation.model import MixtureSegmenter, SegmenterConfig
from osteo_engine.segmentation.transplant import transplant

SMALL = dict(base_channels=4, depth=2, max_channels=8, head_channels=6, modules=3)


def _trained_per_module(seed: int) -> MixtureSegmenter:
    torch.manual_seed(seed)
    source = MixtureSegmenter(SegmenterConfig(**SMALL, latent_size=1, heads="per-module"))
    with torch.no_grad():  # a modulation far from its start, so that folding it in matters
        for p in (source.heads.mu, source.heads.w_scale, source.heads.w_bias, source.heads.scale_bias):
            p.add_(torch.randn_like(p))
    return source


def test_the_new_first_module_draws_the_most_routed_source_module_at_its_mean():
    source = _trained_per_module(0)
    with torch.no_grad():
        source.router[2].bias.copy_(torch.tensor([0.0, 9.0, 0.0]))  # module 2 takes π
    target = MixtureSegmenter(SegmenterConfig(**SMALL, latent_size=2, heads="shared"))
    x = torch.rand(2, 1, 16, 24)

    assert transplant(source.state_dict(), source.config, target, x) == 1
    with torch.no_grad():
        _, decoded = source.unet(x)
        expected = source.heads.forward_module(decoded, source.heads.mu[1].expand(2, -1), 1)
        _, carried = target.unet(x)
        got = target.heads.forward_module(carried, torch.zeros(2, 2), 0)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)
    assert not torch.equal(target.heads.mu[0], target.heads.mu[1])  # the priors keep their spread start


def test_a_source_with_another_unet_is_refused():
    source = _trained_per_module(1)
    target = MixtureSegmenter(SegmenterConfig(**(SMALL | {"base_channels": 8}), heads="shared"))
    with pytest.raises(ConfigError, match="same U-Net"):
        transplant(source.state_dict(), source.config, target, torch.rand(1, 1, 16, 24))
