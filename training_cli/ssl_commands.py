"""`osteo pretrain`: self-supervised pretraining of the bone-patch encoder."""
from __future__ import annotations

import sys
from pathlib import Path

from .output import emit, log, progress_bar


def add_parsers(sub) -> None:
    p = sub.add_parser("pretrain", help="self-supervised pretraining (SimCLR, SupCon, SwAV, VICReg) on bone patches")
    p.add_argument("--method", choices=["simclr", "supcon", "swav", "vicreg"], required=True)
    p.add_argument("--data", required=True, help="manifest CSV (unlabelled rows are pretraining data too)")
    p.add_argument("--preset", choices=["cpu-small", "paper"], default="cpu-small")
    p.add_argument("--out", required=True, help="run folder")
    p.add_argument("--multicrop", choices=["constrained", "conventional"], default="constrained")
    p.add_argument("--input", choices=["patches", "raw"], default="patches",
                   help="bone patches from the segmenter's masks, or raw radiograph squares (no segmentation)")
    p.add_argument("--segmenter", help="segmentation model for the patches (default: the bundled model)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--patch-size", type=int, help="override the preset's patch size (crops scale with it)")
    p.add_argument("--seed", type=int)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=run_pretrain)


def patch_bank_for(manifest: str, size: int, source: str, segmenter_path: str | None, cache_dir: Path, seed: int):
    """The manifest's patch bank, from the cache when the manifest, size, input and segmenter match."""
    from osteo_engine.segmentation.predict import load_segmenter
    from osteo_engine.ssl.data import PatchBank, bank_cache_name, build_patch_bank

    segmenter = load_segmenter(segmenter_path) if source == "patches" else None
    cached = cache_dir / bank_cache_name(manifest, size, source, segmenter.card if segmenter else None)
    if cached.exists():
        return PatchBank.load(cached)
    with progress_bar(0, "patches") as update:
        bank = build_patch_bank(manifest, size, source, segmenter, seed, progress=update)
    bank.save(cached)
    for reason in bank.skipped:
        log(f"skipped {reason}")
    return bank


def _start_distributed() -> tuple[int, int]:
    """Under torchrun (WORLD_SIZE > 1): join the process group, NCCL on GPU and gloo on CPU."""
    import os

    import torch
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)


def run_pretrain(args) -> int:
    import torch.distributed as dist
    from tqdm import tqdm

    from osteo_engine.ssl.pretrain import pretrain, pretrain_preset

    config = pretrain_preset(args.preset, args.method, epochs=args.epochs, seed=args.seed, source=args.input,
                             batch_size=args.batch_size, patch_size=args.patch_size, multicrop_mode=args.multicrop)
    rank, world = _start_distributed()
    try:
        cache = Path(args.out) / "cache"
        if rank == 0:  # one rank builds the patch bank; the others read it from the cache
            patch_bank_for(args.data, config.patch_size, config.source, args.segmenter, cache, config.seed)
        if world > 1:
            dist.barrier()
        bank = patch_bank_for(args.data, config.patch_size, config.source, args.segmenter, cache, config.seed)
        bar = tqdm(total=config.epochs, desc=f"pretrain {args.method}", unit="epoch", file=sys.stderr, leave=False,
                   disable=rank != 0)

        def progress(record: dict) -> None:
            bar.n = record["epoch"]
            bar.set_postfix(loss=f"{record['loss']:.3f}")

        try:
            result = pretrain(bank, args.out, config, resume=args.resume,
                              command="osteo " + " ".join(sys.argv[1:]), progress=progress)
        finally:
            bar.close()
    finally:
        if world > 1:
            dist.destroy_process_group()
    if rank == 0:
        stats = result.crop_stats
        emit({"run": str(result.run), "epochs": result.epochs_done, "world_size": world, "crops": stats}, args.json,
             [f"run {result.run}: {result.epochs_done} epochs on {world} process(es); {stats['fallbacks']} of "
              f"{stats['crops']} constrained crops fell back to the best try"])
    return 0


def add_probe_parser(sub) -> None:
    p = sub.add_parser("probe", help="linear probe on a frozen pretrained encoder; subject-level test metrics")
    p.add_argument("--encoder", required=True, help="pretraining run folder (or its encoder .safetensors)")
    p.add_argument("--data", required=True, help="manifest CSV with labels and splits")
    p.add_argument("--out", required=True, help="folder for the probe and its report")
    p.add_argument("--segmenter", help="segmentation model for the patches (default: the bundled model)")
    p.add_argument("--folds", type=int, default=5, help="subject-wise folds of train+val that choose the probe")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=run_probe)


def encoder_checkpoint(path: str) -> Path:
    path = Path(path)
    return path / "checkpoints" / "last.safetensors" if path.is_dir() else path


def run_probe(args) -> int:
    from osteo_engine.ssl.probe import ProbeConfig, encode, evaluate_probe, load_encoder, train_probe
    from osteo_engine.storage import atomic_write_bytes, strict_json

    checkpoint = encoder_checkpoint(args.encoder)
    encoder, _, card = load_encoder(checkpoint)
    source = card.get("source", "patches")
    out = Path(args.out)
    bank = patch_bank_for(args.data, card["patch_size"], source, args.segmenter, out / "cache", 0)
    features = encode(encoder, bank.patches)
    probe, info = train_probe(features, bank, ProbeConfig(folds=args.folds))
    report = {"encoder": str(checkpoint), "method": card["method_config"]["method"], "input": source, **info,
              "test": evaluate_probe(probe, features, bank, "test")}
    probe.save(out / "probe.safetensors", {"model": "LinearProbe", "encoder": str(checkpoint),
                                           "method": report["method"], "input": source,
                                           "command": "osteo " + " ".join(sys.argv[1:])})
    atomic_write_bytes(out / "report.json", strict_json(report, indent=2).encode())
    m, ci = report["test"]["metrics"], report["test"]["intervals_95"]
    emit(report, args.json, [f"{report['test']['subjects']} test subjects, threshold {probe.threshold:.3f} "
                             f"(validation macro-F1 {info['val_macro_f1']:.3f} over {info['folds']} folds, C {info['strength']:g})"] +
         [f"  {k:9s} {m[k]:.3f}  [{ci[k][0]:.3f}, {ci[k][1]:.3f}]" for k in m])
    return 0


def add_experiment_parser(sub) -> None:
    p = sub.add_parser("experiment", help="the paper's tables 1–4 and fig. 5 over seeds, resumable, with report.md")
    p.add_argument("--data", required=True, help="manifest CSV with labels (and splits)")
    p.add_argument("--preset", choices=["cpu-small", "paper"], default="cpu-small")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--out", required=True)
    p.add_argument("--methods", nargs="+", default=["simclr", "supcon", "swav", "vicreg"],
                   choices=["simclr", "supcon", "swav", "vicreg"])
    p.add_argument("--tables", nargs="+", default=["1", "2", "3", "4"], choices=["1", "2", "3", "4"])
    p.add_argument("--test-data", help="an external cohort's manifest: every model is scored there too")
    p.add_argument("--segmenter", help="segmentation model for the patches (default: the bundled model)")
    p.add_argument("--epochs", type=int, help="override the preset's pretraining epochs")
    p.add_argument("--batch-size", type=int, help="override the preset's batch size")
    p.add_argument("--patch-size", type=int, help="override the preset's patch size (crops scale with it)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=run_experiment_command)


def run_experiment_command(args) -> int:
    from osteo_engine.experiments import needed_inputs, run_experiment
    from osteo_engine.ssl.pretrain import pretrain_preset

    size = pretrain_preset(args.preset, patch_size=args.patch_size).patch_size
    out = Path(args.out)
    inputs = needed_inputs(args.tables)
    banks = {s: patch_bank_for(args.data, size, s, args.segmenter, out / "cache", 0) for s in inputs}
    external = ({s: patch_bank_for(args.test_data, size, s, args.segmenter, out / "cache", 0) for s in inputs}
                if args.test_data else None)
    oracle = None
    if (Path(args.data).parent / "phantom.json").exists():
        from osteo_engine.phantom import run_oracle

        oracle = run_oracle(Path(args.data).parent).auc

    def progress(spec, record) -> None:
        m = record["metrics"]
        log(f"{spec.name}: AUC {m['auc']:.3f}, F1 {m['f1']:.3f}"
            + (f", external AUC {record['external']['auc']:.3f}" if "external" in record else ""))

    overrides = {k: v for k, v in (("epochs", args.epochs), ("batch_size", args.batch_size),
                                   ("patch_size", args.patch_size)) if v is not None}
    results = run_experiment(banks, out, args.preset, args.seeds, args.methods, args.tables, external, oracle,
                             overrides, progress)
    emit(results, args.json, [f"{len(results['runs'])} runs; report: {out / 'report.md'}"])
    return 0
