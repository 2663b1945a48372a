"""Screening model folders made for tests, and a strict reader of their JSON answers."""


def random_screening_model(folder, threshold=0.5, indices_weight=None):
    """An untrained encoder and probe: enough to exercise the pipeline, not to screen anyone. With
    `indices_weight`, a fused probe that reads the radiogrammetry indices alone, each with that weight (its
    missing values become 2.0, lengths in px)."""
    import numpy as np
    import torch

    from osteo_engine.cards import EncoderCard, ProbeCard
    from osteo_engine.runs import write_model
    from osteo_engine.ssl.encoders import build_encoder
    from osteo_engine.ssl.probe import Probe

    torch.manual_seed(0)
    encoder, features = build_encoder("resnet18", stem="compact")
    method = {"method": "simclr", "encoder": "resnet18", "stem": "compact"}
    write_model(folder / "encoder.safetensors", encoder.state_dict(), EncoderCard(method_config=method, patch_size=32))
    rng = np.random.default_rng(0)
    probe = Probe(rng.normal(size=features) * 0.01, 0.0, np.zeros(features), np.ones(features), threshold)
    if indices_weight is not None:
        from osteo_engine.radiogrammetry import FEATURES

        n = features + len(FEATURES)
        weight = np.r_[np.zeros(features), np.full(len(FEATURES), indices_weight)]
        probe = Probe(weight, 0.0, np.zeros(n), np.ones(n), threshold, np.full(len(FEATURES), 2.0), "px", FEATURES)
    probe.save(
        folder / "probe.safetensors",
        ProbeCard(
            name="test probe",
            threshold=threshold,
            refer_policy={"margin": 0.0, "max_uncertainty": 9.0, "min_bones": 1},
        ),
    )


def no_bare_constants(text: str):
    import json

    def refuse(name):
        raise ValueError(f"{name} is not JSON")

    return json.loads(text, parse_constant=refuse)
