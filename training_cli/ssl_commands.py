"""`osteo pretrain`: self-supervised pretraining of the bone-patch encoder."""

from __future__ import annotations

import sys
from pathlib import Path

from osteo_engine import registry

from .output import JobOutput, add_progress_json, emit, log


def add_parsers(sub) -> None:
    p = sub.add_parser("pretrain", help="self-supervised pretraining (SimCLR, SupCon, SwAV, VICReg) on bone patches")
    p.add_argument("--method", choices=registry.SSL_METHODS, required=True)
    p.add_argument("--data", required=True, help="manifest CSV (unlabelled rows are pretraining data too)")
    p.add_argument("--preset", choices=registry.PRESETS, default="cpu-small")
    p.add_argument("--out", required=True, help="run folder")
    p.add_argument("--multicrop", choices=registry.MULTICROP_MODES, default="constrained")
    p.add_argument(
        "--input",
        choices=registry.PATCH_INPUTS,
        default="patches",
        help="bone patches from the segmenter's masks, or raw radiograph squares (no segmentation)",
    )
    p.add_argument("--segmenter", help="segmentation model for the patches (default: the bundled model)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--patch-size", type=int, help="override the preset's patch size (crops scale with it)")
    p.add_argument("--seed", type=int)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--json", action="store_true")
    add_progress_json(p)
    p.set_defaults(run=run_pretrain)


def run_pretrain(args) -> int:
    from osteo_engine.ssl.pretrain_job import PretrainRequest, pretrain_job

    request = PretrainRequest(
        method=args.method,
        data=Path(args.data),
        out=Path(args.out),
        preset=args.preset,
        multicrop=args.multicrop,
        source=args.input,
        segmenter=Path(args.segmenter) if args.segmenter else None,
        epochs=args.epochs,
        batch_size=args.batch_size,
        patch_size=args.patch_size,
        seed=args.seed,
        resume=args.resume,
        command="osteo " + " ".join(sys.argv[1:]),
    )
    output = JobOutput(args, f"pretrain {args.method}")
    with output.cancellable(), output.images() as update:
        job = pretrain_job(request, output, output.cancel, update)
    if job.result is None or output.as_json:  # another rank's, or the events said it all
        return 0
    for reason in job.skipped:
        log(f"skipped {reason}")
    stats = job.result.crop_stats
    emit(
        {"run": str(job.result.run), "epochs": job.result.epochs_done, "world_size": job.world_size, "crops": stats},
        args.json,
        [
            f"run {job.result.run}: {job.result.epochs_done} epochs on {job.world_size} process(es); "
            f"{stats['fallbacks']} of {stats['crops']} constrained views fell back to the best try; "
            f"{stats['below_min']} views kept less than {job.min_nonzero:.0%} non-zero pixels"
        ],
    )
    return 0


def add_probe_parser(sub) -> None:
    p = sub.add_parser("probe", help="linear probe on a frozen pretrained encoder; subject-level test metrics")
    p.add_argument("--encoder", required=True, help="pretraining run folder (or its encoder .safetensors)")
    p.add_argument("--data", required=True, help="manifest CSV with labels and splits")
    p.add_argument("--out", required=True, help="folder for the probe and its report")
    p.add_argument("--segmenter", help="segmentation model for the patches (default: the bundled model)")
    p.add_argument("--folds", type=int, default=5, help="subject-wise folds of train+val that choose the probe")
    p.add_argument(
        "--protocol",
        choices=registry.PROBE_PROTOCOLS,
        default="folds",
        help="folds: strength and threshold chosen over subject-wise folds of train+val (default); "
        "paper: fitted on train, the val split picks by macro-F1 at the argmax threshold 0.5",
    )
    p.add_argument("--json", action="store_true")
    add_progress_json(p)
    p.set_defaults(run=run_probe)


def run_probe(args) -> int:
    from osteo_engine.ssl.probing import ProbeRequest, probe_encoder

    request = ProbeRequest(
        encoder=Path(args.encoder),
        data=Path(args.data),
        out=Path(args.out),
        folds=args.folds,
        protocol=args.protocol,
        segmenter=Path(args.segmenter) if args.segmenter else None,
        command="osteo " + " ".join(sys.argv[1:]),
    )
    output = JobOutput(args, "probe")
    with output.images() as update:
        result = probe_encoder(request, update)
    for reason in result.skipped:
        log(f"skipped {reason}")
    if output.as_json:
        output.done(result.probe)
        return 0
    report = result.report
    m, ci = report["test"]["metrics"], report["test"]["intervals_95"]
    emit(
        report,
        args.json,
        [
            f"{report['test']['subjects']} test subjects ({report['split']}'s split), threshold "
            f"{report['threshold']:.3f} (validation macro-F1 {report['val_macro_f1']:.3f} over "
            f"{report['folds']} folds, C {report['strength']:g})"
        ]
        + [f"  {k:9s} {m[k]:.3f}  [{ci[k][0]:.3f}, {ci[k][1]:.3f}]" for k in m],
    )
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
    p.add_argument(
        "--probe-protocol",
        choices=registry.PROBE_PROTOCOLS,
        default="folds",
        help="how the linear probe is chosen (see `osteo probe --protocol`)",
    )
    p.add_argument("--segmenter", help="segmentation model for the patches (default: the bundled model)")
    p.add_argument("--epochs", type=int, help="override the preset's pretraining epochs")
    p.add_argument("--batch-size", type=int, help="override the preset's batch size")
    p.add_argument("--patch-size", type=int, help="override the preset's patch size (crops scale with it)")
    p.add_argument("--json", action="store_true")
    add_progress_json(p)
    p.set_defaults(run=run_experiment_command)


def run_experiment_command(args) -> int:
    from osteo_engine.experiments import ExperimentRequest, experiment, plan

    overrides = {
        k: v
        for k, v in (("epochs", args.epochs), ("batch_size", args.batch_size), ("patch_size", args.patch_size))
        if v is not None
    }
    request = ExperimentRequest(
        data=Path(args.data),
        out=Path(args.out),
        preset=args.preset,
        seeds=tuple(args.seeds),
        methods=tuple(args.methods),
        tables=tuple(args.tables),
        test_data=Path(args.test_data) if args.test_data else None,
        segmenter=Path(args.segmenter) if args.segmenter else None,
        overrides=overrides,
        probe_protocol=args.probe_protocol,
    )

    output = JobOutput(args, "experiment", unit="run")
    finished = []

    def progress(spec, record) -> None:
        from osteo_engine.events import Event

        finished.append(spec.name)
        m = record["metrics"]
        output(Event("progress", "experiment", done=len(finished), total=total, metrics={"run": spec.name, **m}))
        if not output.as_json:
            log(
                f"{spec.name}: AUC {m['auc']:.3f}, F1 {m['f1']:.3f}"
                + (f", external AUC {record['external']['auc']:.3f}" if "external" in record else "")
            )

    total = len(plan(list(request.methods), list(request.tables), list(request.seeds)))
    with output.images() as update:
        results = experiment(request, progress, update)
    if output.as_json:
        output.done(request.out / "results.json")
    else:
        emit(results, args.json, [f"{len(results['runs'])} runs; report: {request.out / 'report.md'}"])
    return 0
