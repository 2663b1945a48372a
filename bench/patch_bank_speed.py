"""Images per second of making bone patches (goal ≥ 3/s for 1024×1280 phantoms on 2 cores).

In one process, with the bundled segmenter, interleaved over `--repeats` rounds:
- in memory, the same phantoms, each way followed by what a patch bank does with a label map (`bone_patches` at
  96 pixels and the radiogrammetry of all seven bones, `measure_bones`):
  - `one_by_one`: `segment(..., modules=False)` per image (how patch banks were first made);
  - `batched`: `segmentation.batch.label_maps`, 4 images a pass, with a bank's latent samples per module
    (`ssl.data.BANK_SAMPLES`), in bfloat16 where the processor computes it natively (`reading.native_bf16`);
  - `batched_fp32`: the same in float32 throughout;
  - with `--reference CHECKOUT` (e.g. a `git worktree` of an earlier commit), that engine's `batched` way with
    its own patches and radiogrammetry;
- end to end, `build_patch_bank` on a manifest of the same phantoms written as DICOM files (reading them
  included), this checkout's and, with `--reference`, the reference's.
It also prints the share of pixels on which the label maps of `one_by_one`, `batched` and `batched_fp32` differ,
and where the time of each image goes in float32 and in bfloat16: the U-Net, the K·S heads' weighted mean, the
label map's restoration, the patches and the radiogrammetry.

Run: .venv/bin/python bench/patch_bank_speed.py [--images 16] [--repeats 2] [--reference /tmp/ref]
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _reference_engine(checkout: Path):
    """The reference checkout's osteo_engine, importable beside this one as `reference_engine`."""
    folder = Path(tempfile.mkdtemp())
    (folder / "reference_engine").symlink_to(checkout.resolve() / "osteo_engine")
    sys.path.insert(0, str(folder))
    return importlib.import_module("reference_engine")


def _ways(engine, images: list[np.ndarray], manifest: Path) -> dict:
    """name -> a function of no argument: `one_by_one` and `batched` make every image's label map, patches and
    radiogrammetry; `bank` makes the manifest's patch bank. One segmenter for all three."""
    batch = importlib.import_module(f"{engine}.segmentation.batch")
    predict = importlib.import_module(f"{engine}.segmentation.predict")
    patches = importlib.import_module(f"{engine}.patches")
    radiogrammetry = importlib.import_module(f"{engine}.radiogrammetry")
    data = importlib.import_module(f"{engine}.ssl.data")
    segmenter = predict.load_segmenter()
    samples = getattr(data, "BANK_SAMPLES", 4)  # a bank's latents per module (4 before BANK_SAMPLES)

    def after(maps):
        for pixels, labels in zip(images, maps):
            patches.bone_patches(pixels, labels, 96)
            radiogrammetry.measure_bones(radiogrammetry.bone_bright(pixels, labels), labels, None)
            yield labels

    return {
        "one_by_one": lambda: list(after(predict.segment(p, segmenter, modules=False).labels for p in images)),
        "batched": lambda: list(after(batch.label_maps(images, segmenter, samples=samples))),
        "batched_fp32": lambda: list(after(batch.label_maps(images, segmenter, samples=samples, bf16=False))),
        "bank": lambda: data.build_patch_bank(manifest, 96, "patches", segmenter),
    }


def _stage_times(images: list[np.ndarray], bf16: bool) -> dict[str, float]:
    """Seconds per image of each stage of `batched`, 4 images a pass (this checkout), the network in bfloat16
    autocast when `bf16`. The heads' time is the network's (`mean_prediction`) less a separate pass of its U-Net
    on the same batch."""
    import torch

    from osteo_engine.patches import bone_patches
    from osteo_engine.radiogrammetry import bone_bright, measure_bones
    from osteo_engine.segmentation.batch import bone_labels
    from osteo_engine.segmentation.data import Letterbox
    from osteo_engine.segmentation.predict import load_segmenter
    from osteo_engine.segmentation.reading import repeatable
    from osteo_engine.ssl.data import BANK_SAMPLES

    segmenter = load_segmenter()
    model, times = segmenter.model, dict.fromkeys(("unet", "network", "labels", "patches", "radiogrammetry"), 0.0)

    def timed(stage, fn, *args, **kwargs):
        started = time.perf_counter()
        out = fn(*args, **kwargs)
        times[stage] += time.perf_counter() - started
        return out

    for k in range(0, len(images), 4):
        chunk = images[k : k + 4]
        boxes = [Letterbox.fit(p.shape, segmenter.input_size) for p in chunk]
        x = torch.from_numpy(np.stack([box.image(p) for box, p in zip(boxes, chunk)]))[:, None]
        x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            timed("unet", model.unet, x)
            means, _ = timed("network", model.mean_prediction, x, samples=BANK_SAMPLES, generator=repeatable(segmenter))
        for pixels, box, mean in zip(chunk, boxes, means.float().numpy()):
            labels = timed("labels", bone_labels, mean, box)
            timed("patches", bone_patches, pixels, labels, 96)
            bright = bone_bright(pixels, labels)
            timed("radiogrammetry", measure_bones, bright, labels, None)
    times["heads"] = times.pop("network") - times["unet"]
    order = ("unet", "heads", "labels", "patches", "radiogrammetry")
    return {stage: times[stage] / len(images) for stage in order}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--reference", type=Path, help="a checkout of the engine to compare with")
    args = parser.parse_args()

    import torch

    from osteo_engine.phantom import PhantomConfig, generate_subject, write_cohort

    images = [generate_subject(0, i, raters=0).image.astype(np.float32) / 65535.0 for i in range(args.images)]
    manifest = write_cohort(Path(tempfile.mkdtemp()) / "cohort", PhantomConfig(args.images, seed=0, raters=1))
    ways = _ways("osteo_engine", images, manifest)
    if args.reference:
        _reference_engine(args.reference)
        reference = _ways("reference_engine", images, manifest)
        ways |= {"reference_batched": reference["batched"], "reference_bank": reference["bank"]}
    timings: dict[str, list[float]] = {name: [] for name in ways}
    maps = {}
    ways["batched"]()  # warm-up
    for _ in range(args.repeats):
        for name, fn in ways.items():
            torch.manual_seed(0)
            started = time.perf_counter()
            maps[name] = fn()
            timings[name].append(time.perf_counter() - started)
    rate = {name: args.images / statistics.median(t) for name, t in timings.items()}
    from osteo_engine.segmentation.reading import native_bf16

    bf16 = native_bf16(torch.device("cpu"))
    print(f"{args.images} phantoms 1024x1280, {torch.get_num_threads()} threads, bfloat16 native: {bf16}, images/s:")
    for name in ways:
        print(f"  {name:18s} {rate[name]:.2f} ({rate[name] / rate['batched_fp32']:.2f}x batched_fp32)")
    for first, second in (("one_by_one", "batched_fp32"), ("batched_fp32", "batched")):
        differ = np.mean([(a != b).mean() for a, b in zip(maps[first], maps[second])])
        print(f"label maps of {first} and {second} differ on {differ:.4%} of pixels")
    for precision in (False, True):
        stages = _stage_times(images, precision)
        times = ", ".join(f"{stage} {seconds:.3f}" for stage, seconds in stages.items())
        print(f"{'bfloat16' if precision else 'float32'}, s per image: {times}")


if __name__ == "__main__":
    main()
