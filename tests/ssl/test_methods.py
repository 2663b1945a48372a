import pytest
import torch

from osteo_engine.ssl.losses import simclr_loss
from osteo_engine.ssl.methods import METHODS, MethodConfig, build_method

SMALL = dict(projector_hidden=32, projector_out=16, prototypes=8)


def _views(b=6, globals_=2, locals_=2):
    g = torch.Generator().manual_seed(0)
    return (
        [torch.rand(b, 1, 24, 24, generator=g) for _ in range(globals_)],
        [torch.rand(b, 1, 12, 12, generator=g) for _ in range(locals_)],
    )


@pytest.mark.parametrize("method", METHODS)
def test_every_method_gives_a_finite_loss_that_trains_the_encoder(method):
    torch.manual_seed(0)
    model = build_method(MethodConfig(method=method, **SMALL))
    global_views, local_views = _views()
    loss = model.loss(global_views, local_views, labels=torch.tensor([0, 1, 0, 1, 1, 0]))
    assert torch.isfinite(loss)
    loss.backward()
    assert model.encoder.conv1.weight.grad.abs().sum() > 0


def test_simclr_on_two_views_is_nt_xent_of_the_projections():
    torch.manual_seed(0)
    model = build_method(MethodConfig(method="simclr", **SMALL)).eval()
    global_views, _ = _views(locals_=0)
    z = model.project(global_views)
    assert torch.allclose(model.loss(global_views, []), simclr_loss(z[0], z[1], 0.1), atol=1e-6)


def test_supcon_without_labels_and_unknown_methods_are_refused():
    with pytest.raises(ValueError, match="labels"):
        build_method(MethodConfig(method="supcon", **SMALL)).loss(*_views())
    with pytest.raises(ValueError, match="unknown method"):
        build_method(MethodConfig(method="byol"))
