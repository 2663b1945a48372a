"""`osteo pretrain`: self-supervised pretraining of the bone-patch encoder."""
from __future__ import annotations

import sys
from pathlib import Path

from osteo_engine import registry

from .output import emit, log, progress_bar


def add_parsers(sub) -> None:
    p = sub.add_parser("pretrain", help="self-supervised pretraining (SimCLR, SupCon, SwAV, VICReg) on bone patches")
    p.add_argument("--method", choices=registry.SSL_METHODS, required=True)
    p.add_argument("--data", required=True, help="manifest CSV (unlabelled rows are pretraining data too)")
    p.add_argument("--preset", choices=registry.PRESETS, default="cpu-small")
    p.add_argument("--out", required=True, help="run folder")
    p.add_argument("--multicrop", choices=registry.MULTICROP_MODES, default="constrained")
    p.add_argument("--input", choices=registry.PATCH_INPUTS, default="patches",
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
    """The engine's cached patch bank, with a progress bar while it is built and the skipped images logged."""
    from osteo_engine.ssl.data import cached_patch_bank

    with progress_bar(0, "patches") as update:
        bank = cached_patch_bank(manifest, size, source, segmenter_path, cache_dir, seed, update)
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
              f"{stats['crops']} constrained views fell back to the best try; {stats['below_min']} views kept "
              f"less than {config.multicrop.min_nonzero:.0%} non-zero pixels"])
    return 0


def add_probe_parser(sub) -> None:
    p = sub.add_parser("probe", help="linear probe on a frozen pretrained encoder; subject-level test metrics")
    p.add_argument("--encoder", required=True, help="pretraining run folder (or its encoder .safetensors)")
    p.add_argument("--data", required=True, help="manifest CSV with labels and splits")
    p.add_argument("--out", required=True, help="folder for the probe and its report")
    p.add_argument("--segmenter", help="segmentation model for the patches (default: the bundled model)")
    p.add_argument("--folds", type=int, default=5, help="subject-wise folds of train+val that choose the probe")
    p.add_argument("--protocol", choices=registry.PROBE_PROTOCOLS, default="folds",
                   help="folds: strength and threshold chosen over subject-wise folds of train+val (default); "
                        "paper: fitted on train, the val split picks by macro-F1 at the argmax threshold 0.5")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=run_probe)


def run_probe(args) -> int:
    from osteo_engine.ssl.probing import ProbeRequest, probe_encoder

    request = ProbeRequest(encoder=Path(args.encoder), data=Path(args.data), out=Path(args.out), folds=args.folds,
                           protocol=args.protocol,
                           segmenter=Path(args.segmenter) if args.segmenter else None,
                           command="osteo " + " ".join(sys.argv[1:]))
    with progress_bar(0, "patches") as update:
        result = probe_encoder(request, update)
    for reason in result.skipped:
        log(f"skipped {reason}")
    report = result.report
    m, ci = report["test"]["metrics"], report["test"]["intervals_95"]
    emit(report, args.json, [f"{report['test']['subjects']} test subjects ({report['split']}'s split), threshold "
                             f"{report['threshold']:.3f} (validation macro-F1 {report['val_macro_f1']:.3f} over "
                             f"{report['folds']} folds, C {report['strength']:g})"] +
         [f"  {k:9s} {m[k]:.3f}  [{ci[k][0]:.3f}, {ci[k][1]:.3f}]" for k in m])
    return 0


def add_experiment_parser(sub) -> None:
    p = sub.add_parser("experiment", help="the paper's tables 1–4 and fig. 5 over seeds, resumable, with report.md")
    p.add_argument("--data", required=True, help="manifest CSV with labels (and splits)")
    p.add_argument("--preset", choices=registry.PRESETS, default="cpu-small")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--out", required=True)
    p.add_argument("--methods", nargs="+", default=list(registry.SSL_METHODS), choices=registry.SSL_METHODS)
    p.add_argument("--tables", nargs="+", default=list(registry.TABLES), choices=registry.TABLES)
    p.add_argument("--test-data", help="an external cohort's manifest: every model is scored there too")
    p.add_argument("--probe-protocol", choices=registry.PROBE_PROTOCOLS, default="folds",
                   help="how the linear probe is chosen (see `osteo probe --protocol`)")
    p.add_argument("--segmenter", help="segmentation model for the patches (default: the bundled model)")
    p.add_argument("--epochs", type=int, help="override the preset's pretraining epochs")
    p.add_argument("--batch-size", type=int, help="override the preset's batch size")
    p.add_argument("--patch-size", type=int, help="override the preset's patch size (crops scale with it)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=run_experiment_command)


def run_experiment_command(args) -> int:
    from osteo_engine.experiments import ExperimentRequest, experiment

    overrides = {k: v for k, v in (("epochs", args.epochs), ("batch_size", args.batch_size),
                                   ("patch_size", args.patch_size)) if v is not None}
    request = ExperimentRequest(data=Path(args.data), out=Path(args.out), preset=args.preset, seeds=tuple(args.seeds),
                                methods=tuple(args.methods), tables=tuple(args.tables),
                                test_data=Path(args.test_data) if args.test_data else None,
                                segmenter=Path(args.segmenter) if args.segmenter else None, overrides=overrides,
                                probe_protocol=args.probe_protocol)

    def progress(spec, record) -> None:
        m = record["metrics"]
        log(f"{spec.name}: AUC {m['auc']:.3f}, F1 {m['f1']:.3f}"
            + (f", external AUC {record['external']['auc']:.3f}" if "external" in record else ""))

    with progress_bar(0, "patches") as update:
        results = experiment(request, progress, update)
    emit(results, args.json, [f"{len(results['runs'])} runs; report: {request.out / 'report.md'}"])
    return 0
