import pytest
import torch

from osteo_engine.ssl.encoders import build_encoder
from osteo_engine.ssl.larc import LARC


def test_larc_scales_each_layer_by_its_clipped_trust_ratio():
    torch.manual_seed(0)
    p = torch.nn.Parameter(torch.randn(10))
    grad = torch.randn(10) * 5
    p.grad = grad.clone()
    lr, decay, eta = 0.5, 1e-4, 0.02
    before = p.detach().clone()
    LARC(torch.optim.SGD([p], lr=lr, weight_decay=decay), trust_coefficient=eta).step()
    trust = eta * before.norm() / (grad.norm() + decay * before.norm())
    scale = min(float(trust / lr), 1.0)
    expected = before - lr * scale * (grad + decay * before)
    assert torch.allclose(p.detach(), expected, atol=1e-6)


def test_larc_never_steps_further_than_plain_sgd_and_keeps_the_inner_weight_decay():
    torch.manual_seed(1)
    p = torch.nn.Parameter(torch.randn(4) * 100)
    p.grad = torch.full((4,), 1e-6)
    inner = torch.optim.SGD([p], lr=0.1, weight_decay=0.0)
    before = p.detach().clone()
    LARC(inner, trust_coefficient=10.0).step()  # huge trust: clipped to the plain step
    assert torch.allclose(p.detach(), before - 0.1 * 1e-6, atol=1e-9)
    q = torch.nn.Parameter(torch.ones(3))
    q.grad = torch.ones(3)
    larc = LARC(torch.optim.SGD([q], lr=0.1, weight_decay=0.5))
    larc.step()
    assert larc.param_groups[0]["weight_decay"] == 0.5


@pytest.mark.parametrize(
    "name, stem, size, features",
    [("resnet18", "compact", 32, 512), ("resnet18", "cifar", 16, 512), ("resnet50", "imagenet", 64, 2048)],
)
def test_encoders_take_one_channel_and_give_features(name, stem, size, features):
    encoder, dim = build_encoder(name, stem)
    assert dim == features
    assert encoder(torch.randn(2, 1, size, size)).shape == (2, features)
    with pytest.raises(ValueError):
        build_encoder("vgg")
    with pytest.raises(ValueError):
        build_encoder("resnet18", "tiny")
