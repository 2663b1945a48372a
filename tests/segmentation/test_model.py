import numpy as np
import pytest
import torch

from osteo_engine.segmentation import model as model_module
from osteo_engine.segmentation.losses import gamma_schedule, ot_segmentation_loss, pairwise_cross_entropy, soft_iou_cost
from osteo_engine.segmentation.metrics import iou_distance
from osteo_engine.segmentation.model import MixtureSegmenter, SegmenterConfig

SMALL = SegmenterConfig(base_channels=4, depth=2, modules=3, latent_size=2, head_channels=8)


def test_output_shapes_weights_and_routing():
    torch.manual_seed(0)
    model = MixtureSegmenter(SMALL)
    out = model(torch.rand(2, 1, 32, 24), samples=5)
    assert out.logits.shape == (2, 3, 5, 8, 32, 24)
    assert torch.allclose(out.routing.sum(1), torch.ones(2))
    assert out.sample_weights.shape == (2, 15) and torch.allclose(out.sample_weights.sum(1), torch.ones(2))
    mean = out.mean_probabilities()
    assert mean.shape == (2, 8, 32, 24) and torch.allclose(mean.sum(1), torch.ones(2, 32, 24), atol=1e-5)


def test_samples_differ_only_through_the_latent_noise():
    torch.manual_seed(0)
    model = MixtureSegmenter(SMALL).eval()
    x = torch.rand(1, 1, 16, 16)
    out = model(x, samples=3)
    assert not torch.allclose(out.logits[0, 0, 0], out.logits[0, 0, 1])
    with torch.no_grad():
        model.heads.log_sigma.fill_(-30.0)  # no noise: every sample of a module is its mean
    out = model(x, samples=3)
    assert torch.allclose(out.logits[0, 1, 0], out.logits[0, 1, 2], atol=1e-5)


@pytest.mark.parametrize("heads", ["shared", "per-module"])
def test_the_batched_heads_equal_a_full_forward_per_sample(heads):
    torch.manual_seed(0)
    model = MixtureSegmenter(SegmenterConfig(base_channels=4, depth=2, modules=3, heads=heads)).eval()
    x = torch.rand(2, 1, 16, 20)
    torch.manual_seed(1)
    batched = model(x, samples=2)
    torch.manual_seed(1)
    reference = model.forward_full_per_sample(x, samples=2)
    assert torch.allclose(batched.logits, reference.logits, atol=1e-5)


@pytest.mark.parametrize("heads", ["shared", "per-module"])
def test_inference_in_pixel_chunks_gives_the_training_paths_logits_and_mean(heads, monkeypatch):
    monkeypatch.setattr(model_module, "CHUNK_VALUES", 2 * 3 * 2 * 16 * 48)  # 48 of 16×20 pixels: 7 chunks
    torch.manual_seed(0)
    model = MixtureSegmenter(SegmenterConfig(base_channels=4, depth=2, modules=3, heads=heads))
    x = torch.rand(2, 1, 16, 20)
    whole = model(x, samples=2, generator=torch.Generator().manual_seed(1))  # gradients on: one product
    with torch.inference_mode():
        chunked = model(x, samples=2, generator=torch.Generator().manual_seed(1))
    mean, routing = model.mean_prediction(x, samples=2, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(chunked.logits, whole.logits.detach(), atol=1e-5)
    assert torch.allclose(mean, whole.mean_probabilities().detach(), atol=1e-6)
    assert torch.allclose(routing, whole.routing.detach())


def test_shared_heads_make_modules_differ_by_their_priors_alone_as_in_mose():
    torch.manual_seed(0)
    model = MixtureSegmenter(SegmenterConfig(base_channels=4, depth=2, modules=4, heads="shared")).eval()
    assert model.heads.mu[:2].flatten().tolist() == [0.0, 1.0]  # spread over [0, 1]
    assert torch.allclose(model.heads.log_sigma.exp(), torch.full((4, 1), 1 / 8))
    with torch.no_grad():
        model.heads.mu[3] = model.heads.mu[2]
        model.heads.log_sigma.fill_(-30.0)
    out = model(torch.rand(1, 1, 16, 16), samples=1)
    assert torch.allclose(out.logits[0, 2], out.logits[0, 3], atol=1e-5)  # same prior: same module
    assert not torch.allclose(out.logits[0, 0], out.logits[0, 1])
    own = MixtureSegmenter(SegmenterConfig(base_channels=4, depth=2, modules=4, heads="per-module"))
    assert sum(p.numel() for p in model.heads.parameters()) < sum(p.numel() for p in own.heads.parameters()) / 3


def test_input_size_must_fit_the_unet():
    with pytest.raises(ValueError, match="multiples of 4"):
        MixtureSegmenter(SMALL)(torch.rand(1, 1, 30, 24))


def test_soft_cost_equals_the_ged_distance_on_hard_predictions():
    rng = np.random.default_rng(0)
    samples = rng.integers(0, 8, (4, 10, 9)) * (rng.random((4, 10, 9)) < 0.7)
    annotations = torch.as_tensor(rng.integers(0, 8, (3, 10, 9)))
    probs = torch.nn.functional.one_hot(torch.as_tensor(samples), 8).permute(0, 3, 1, 2).double()
    cost = soft_iou_cost(probs, annotations)
    for i in range(4):
        for j in range(3):
            assert cost[i, j].item() == pytest.approx(iou_distance(samples[i], annotations[j].numpy()), abs=1e-9)


def test_pairwise_cross_entropy_matches_torch():
    logits = torch.randn(3, 8, 5, 6)
    labels = torch.randint(0, 8, (2, 5, 6))
    ce = pairwise_cross_entropy(logits, labels)
    for i in range(3):
        for j in range(2):
            ref = torch.nn.functional.cross_entropy(logits[i : i + 1], labels[j : j + 1])
            assert ce[i, j].item() == pytest.approx(ref.item(), rel=1e-5)


def test_ot_loss_trains_samples_towards_the_annotations_and_routing_towards_the_coupling():
    torch.manual_seed(0)
    model = MixtureSegmenter(SMALL)
    x = torch.rand(1, 1, 16, 16)
    a = torch.zeros(16, 16, dtype=torch.long)
    a[4:12, 2:8] = 3
    b = a.clone()
    b[4:12, 8:14] = 5
    annotations = torch.stack([a, b])[None]
    beta = torch.tensor([[0.5, 0.5]])
    optimiser = torch.optim.Adam(model.parameters(), lr=0.01)
    first = None
    for step in range(150):
        out = model(x, samples=2)
        # γ starts at 1/N so that every module learns, then anneals to 1 (paper appendix A)
        loss = ot_segmentation_loss(
            out.logits, out.routing, annotations, beta, gamma=gamma_schedule(step, 150, 1 / 6), kl_weight=1.0
        )
        assert torch.isfinite(loss.total)
        first = first if first is not None else loss.segmentation.item()
        optimiser.zero_grad()
        loss.total.backward()
        optimiser.step()
    assert loss.segmentation.item() < 0.5 * first
    np.testing.assert_allclose(loss.coupling[0].sum(0).detach().numpy(), [0.5, 0.5], atol=1e-6)
    # the samples cover both annotations, so the predictive distribution is multimodal
    hard = out.flat_logits()[0].argmax(1)
    hits = {j: min(iou_distance(h.numpy(), annotations[0, j].numpy()) for h in hard) for j in range(2)}
    assert max(hits.values()) < 0.3
    # routing follows the coupling: two modules carry the two equally weighted annotations
    top = np.sort(out.routing[0].detach().numpy())[::-1]
    np.testing.assert_allclose(top[:2], [0.5, 0.5], atol=0.1)


def test_gamma_schedule_anneals_to_one():
    assert gamma_schedule(0, 100, 0.5) == 0.5
    assert gamma_schedule(25, 100, 0.5) == pytest.approx(0.75)
    assert gamma_schedule(60, 100, 0.5) == 1.0


def test_gamma_is_held_at_first_then_annealed_and_a_warm_start_begins_at_one():
    assert [gamma_schedule(s, 100, 0.25, 0.7, 0.3) for s in (0, 30, 50, 70, 90)] == pytest.approx(
        [0.25, 0.25, 0.25 + 0.75 * 20 / 40, 1.0, 1.0]
    )
    assert gamma_schedule(0, 100, 0.25, anneal_fraction=0.0) == 1.0


def test_full_per_sample_path_computes_the_same_samples():
    torch.manual_seed(0)
    model = MixtureSegmenter(SMALL).eval()
    x = torch.rand(2, 1, 16, 16)
    torch.manual_seed(1)
    shared = model(x, samples=3)
    torch.manual_seed(1)
    full = model.forward_full_per_sample(x, samples=3)
    torch.testing.assert_close(shared.logits, full.logits, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(shared.routing, full.routing)


def test_weighted_pairwise_cross_entropy_matches_torch():
    logits = torch.randn(2, 8, 5, 6)
    labels = torch.randint(0, 8, (3, 5, 6))
    weights = torch.rand(8) + 0.1
    ce = pairwise_cross_entropy(logits, labels, weights)
    for i in range(2):
        for j in range(3):
            ref = torch.nn.functional.cross_entropy(logits[i : i + 1], labels[j : j + 1], weight=weights)
            assert ce[i, j].item() == pytest.approx(ref.item(), rel=1e-5)
