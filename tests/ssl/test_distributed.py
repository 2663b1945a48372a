"""Two CPU ranks (gloo): distributed losses and gradients equal the one-process ones on the global batch, and
`torchrun ... -m training_cli pretrain` completes and saves one checkpoint."""

import json
import os
import subprocess
import sys

import pytest
import torch
import torch.multiprocessing as mp

from osteo_engine.ssl.losses import simclr_loss, supcon_loss, swav_loss, vicreg_loss

WORLD = 2
BATCH = 8  # global


def _inputs():
    g = torch.Generator().manual_seed(0)
    return {
        "z1": torch.randn(BATCH, 6, generator=g),
        "z2": torch.randn(BATCH, 6, generator=g),
        "views": torch.randn(BATCH, 3, 6, generator=g),
        "labels": torch.tensor([0, 1, 0, 1, 1, 0, 0, 1]),
        "high": [torch.randn(BATCH, 5, generator=g) for _ in range(2)],
        "low": [torch.randn(BATCH, 5, generator=g) for _ in range(2)],
    }


def _losses(x, distributed):
    """Each loss with the gradients of its inputs; x holds leaf tensors."""
    out = {}
    for name, fn in (
        ("simclr", lambda: simclr_loss(x["z1"], x["z2"], 0.5, distributed)),
        ("vicreg", lambda: vicreg_loss(x["z1"], x["z2"], distributed=distributed)),
        ("supcon", lambda: supcon_loss(x["views"], x["labels"], 0.1, distributed)),
        ("swav", lambda: swav_loss(x["high"], x["low"], distributed=distributed)),
    ):
        for t in [x["z1"], x["z2"], x["views"], *x["high"], *x["low"]]:
            t.grad = None
        loss = fn()
        loss.backward()
        grads = {
            "z1": x["z1"].grad,
            "z2": x["z2"].grad,
            "views": x["views"].grad,
            "high0": x["high"][0].grad,
            "low0": x["low"][0].grad,
        }
        out[name] = (loss.detach(), {k: None if v is None else v.clone() for k, v in grads.items()})
    return out


def _shard(x, rank):
    part = slice(rank * BATCH // WORLD, (rank + 1) * BATCH // WORLD)
    leaf = lambda t: t[part].clone().requires_grad_(True)  # noqa: E731
    return {
        "z1": leaf(x["z1"]),
        "z2": leaf(x["z2"]),
        "views": leaf(x["views"]),
        "labels": x["labels"][part],
        "high": [leaf(t) for t in x["high"]],
        "low": [leaf(t) for t in x["low"]],
    }


def _worker(rank, init_file, out_dir):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        torch.save(_losses(_shard(_inputs(), rank), distributed=True), os.path.join(out_dir, f"rank{rank}.pt"))
        # one rank tearing gloo down while the other still finishes its last collective aborted a CI run
        # (SIGABRT, "terminate called without an active exception"); pretrain_job waits the same way
        dist.barrier()
    finally:
        dist.destroy_process_group()


def test_distributed_losses_and_gradients_equal_the_single_process_ones(tmp_path):
    mp.spawn(_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=WORLD, join=True)
    full = {k: v.requires_grad_(True) if k != "labels" and torch.is_tensor(v) else v for k, v in _inputs().items()}
    full["high"] = [t.requires_grad_(True) for t in full["high"]]
    full["low"] = [t.requires_grad_(True) for t in full["low"]]
    single = _losses(full, distributed=False)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD)]
    for name, (loss, grads) in single.items():
        mean = sum(r[name][0] for r in ranks) / WORLD  # what DDP's gradient averaging optimises
        assert torch.allclose(mean, loss, atol=1e-5), name
        for key, grad in grads.items():
            if grad is None:
                continue
            # each rank's gradient, averaged over ranks as DDP does, is its shard of the global gradient
            stitched = torch.cat([r[name][1][key] for r in ranks]) / WORLD
            assert torch.allclose(stitched, grad, atol=1e-5), (name, key)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_two_rank_pretraining_run_completes_and_saves_one_checkpoint(small_cohort, tmp_path):
    out = tmp_path / "run"
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        "29533",
        "-m",
        "training_cli",
        "pretrain",
        "--method",
        "simclr",
        "--data",
        str(small_cohort / "manifest.csv"),
        "--input",
        "raw",
        "--out",
        str(out),
        "--epochs",
        "1",
        "--batch-size",
        "16",
        "--json",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=540, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert report["world_size"] == 2 and report["epochs"] == 1
    assert sorted(p.name for p in (out / "checkpoints").glob("*.safetensors")) == ["last.safetensors"]
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 1
