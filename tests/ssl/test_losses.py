"""Each SSL loss equals a reference implementation (lightly, pytorch-metric-learning) on random inputs."""

import pytest
import torch

from osteo_engine.ssl.losses import simclr_loss, supcon_loss, swav_loss, vicreg_loss

lightly_loss = pytest.importorskip("lightly.loss")
pml_losses = pytest.importorskip("pytorch_metric_learning.losses")


@pytest.mark.parametrize("seed, temperature", [(0, 0.5), (1, 0.1), (2, 0.2)])
def test_simclr_equals_lightly_ntxent(seed, temperature):
    g = torch.Generator().manual_seed(seed)
    z1, z2 = torch.randn(16, 32, generator=g), torch.randn(16, 32, generator=g)
    expected = lightly_loss.NTXentLoss(temperature=temperature)(z1, z2)
    assert torch.allclose(simclr_loss(z1, z2, temperature), expected, atol=1e-5)


@pytest.mark.parametrize("seed, views", [(0, 2), (1, 3)])
def test_supcon_equals_pytorch_metric_learning(seed, views):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(12, views, 24, generator=g)
    labels = torch.randint(0, 3, (12,), generator=g)
    flat, flat_labels = z.reshape(12 * views, 24), labels.repeat_interleave(views)
    expected = pml_losses.SupConLoss(temperature=0.1)(flat, flat_labels)
    assert torch.allclose(supcon_loss(z, labels, 0.1), expected, atol=1e-5)


@pytest.mark.parametrize("seed", [0, 1])
def test_vicreg_equals_lightly(seed):
    g = torch.Generator().manual_seed(seed)
    z1, z2 = torch.randn(32, 16, generator=g), torch.randn(32, 16, generator=g) * 0.5
    expected = lightly_loss.VICRegLoss(lambda_param=25, mu_param=25, nu_param=1)(z1, z2)
    assert torch.allclose(vicreg_loss(z1, z2, 25, 25, 1), expected, atol=1e-5)


@pytest.mark.parametrize("seed, local_crops", [(0, 0), (1, 4)])
def test_swav_equals_lightly(seed, local_crops):
    g = torch.Generator().manual_seed(seed)
    high = [torch.randn(16, 10, generator=g) for _ in range(2)]
    low = [torch.randn(16, 10, generator=g) for _ in range(local_crops)]
    expected = lightly_loss.SwaVLoss(temperature=0.1, sinkhorn_iterations=3, sinkhorn_epsilon=0.05)(high, low)
    assert torch.allclose(swav_loss(high, low, 0.1, 3, 0.05), expected, atol=1e-5)


def test_losses_reject_wrong_shapes_with_a_clear_message():
    with pytest.raises(ValueError, match="simclr_loss"):
        simclr_loss(torch.randn(4, 8), torch.randn(5, 8))
    with pytest.raises(ValueError, match="supcon_loss"):
        supcon_loss(torch.randn(4, 8), torch.zeros(4))
    with pytest.raises(ValueError, match="vicreg_loss"):
        vicreg_loss(torch.randn(1, 8), torch.randn(1, 8))
    with pytest.raises(ValueError, match="swav_loss"):
        swav_loss([torch.randn(4, 3)], [])


def test_gradients_flow_to_every_input():
    z1, z2 = torch.randn(8, 6, requires_grad=True), torch.randn(8, 6, requires_grad=True)
    (simclr_loss(z1, z2) + vicreg_loss(z1, z2) + supcon_loss(torch.stack([z1, z2], 1), torch.arange(8) % 2)).backward()
    assert z1.grad.abs().sum() > 0 and z2.grad.abs().sum() > 0
