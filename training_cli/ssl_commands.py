"""`osteo pretrain`: self-supervised pretraining of the bone-patch encoder."""

from __future__ import annotations

from osteo_engine import registry

from .output import JobOutput, add_progress_json, command_line, emit, log, request_from


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

    request = request_from(PretrainRequest, args, source=args.input, command=command_line())
    output = JobOutput(args, f"pretrain {args.method}")
    with output.cancellable(), output.images() as update:
        job = pretrain_job(request, output, output.cancel, update)
    if job.result is None or output.as_json:  # another rank's, or the events said it all
        return 0
    for reason in job.skipped:
        log(f"skipped {reason}")
    run = job.result
    summary = {"run": str(run.run), "epochs": run.epochs_done, "world_size": job.world_size, "crops": run.crop_stats}
    emit(summary, args.json, [_pretrain_line(job)])
    return 0


def _pretrain_line(job) -> str:
    run, stats = job.result, job.result.crop_stats
    return (
        f"run {run.run}: {run.epochs_done} epochs on {job.world_size} process(es); {stats['fallbacks']} of "
        f"{stats['crops']} constrained views fell back to the best try; {stats['below_min']} views kept less "
        f"than {job.min_nonzero:.0%} non-zero pixels"
    )


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
    p.add_argument(
        "--radiogrammetry",
        choices=registry.PROBE_INDICES,
        default="off",
        help="append each image's radiogrammetry summary (the hand's mean MCI and median base density over the "
        "radius, ulna and M1–M5) to its patches' features: "
        "off (default), on, or auto (kept only when the validation macro-F1 is higher with them)",
    )
    p.add_argument("--json", action="store_true")
    add_progress_json(p)
    p.set_defaults(run=run_probe)


def run_probe(args) -> int:
    from osteo_engine.ssl.probing import ProbeRequest, probe_encoder

    request = request_from(ProbeRequest, args, command=command_line())
    output = JobOutput(args, "probe")
    with output.images() as update:
        result = probe_encoder(request, update)
    for reason in result.skipped:
        log(f"skipped {reason}")
    if output.as_json:
        output.done(result.probe)
    else:
        emit(result.report, args.json, _probe_lines(result.report))
    return 0


def _probe_lines(report: dict) -> list[str]:
    m, ci = report["test"]["metrics"], report["test"]["intervals_95"]
    head = (
        f"{report['test']['subjects']} test subjects ({report['split']}'s split), threshold "
        f"{report['threshold']:.3f} (validation macro-F1 {report['val_macro_f1']:.3f} over "
        f"{report['folds']} folds, C {report['strength']:g})"
    )
    fusion = report.get("radiogrammetry")
    if fusion:
        scores = ", ".join(f"{k} {v:.3f}" for k, v in fusion["val_macro_f1"].items())
        head += f"\n  inputs: {fusion['kept']} (validation macro-F1: {scores})"
    return [head] + [f"  {k:9s} {m[k]:.3f}  [{ci[k][0]:.3f}, {ci[k][1]:.3f}]" for k in m]


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
    p.add_argument(
        "--stem",
        choices=registry.STEMS,
        help="override the preset's encoder stem: imagenet (/4), compact (/2, cpu-small's) or cifar (full detail, 4x "
        "compact's compute)",
    )
    p.add_argument(
        "--jitter",
        type=float,
        help="brightness and contrast factors drawn from [1 - J, 1 + J] (the paper's 0.5; 0: none), an ablation",
    )
    p.add_argument(
        "--contrast-jitter",
        type=float,
        help="the contrast factor's J alone (0: brightness jitter only, which keeps the marrow-to-cortex ratio)",
    )
    p.add_argument(
        "--gamma-jitter",
        type=float,
        help="each view's display gamma drawn from [1/(1 + G), 1 + G] (off in the paper), an ablation",
    )
    p.add_argument(
        "--noise",
        type=float,
        help="Gaussian noise of a standard deviation up to S (pixels in [0, 1]) added to each view's bone (off in the "
        "paper), an ablation",
    )
    p.add_argument(
        "--blur",
        type=float,
        help="a Gaussian blur of each view's bone with a sigma up to B view pixels (off in the paper), an ablation",
    )
    p.add_argument(
        "--positives",
        choices=registry.POSITIVES,
        help="view: positive pairs are views of one bone patch (the paper); subject: half of each patch's views come "
        "from another bone of the same subject, an ablation",
    )
    p.add_argument(
        "--finished-only",
        action="store_true",
        help="train nothing: write results.json and report.md from the planned runs already finished, listing the rest",
    )
    p.add_argument("--json", action="store_true")
    add_progress_json(p)
    p.set_defaults(run=run_experiment_command)


def experiment_overrides(args) -> dict:
    """The preset fields and ablations `osteo experiment` was given, as `pretrain_preset`'s overrides."""
    names = ("epochs", "batch_size", "patch_size", "stem")
    names += ("jitter", "contrast_jitter", "gamma_jitter", "noise", "blur", "positives")
    return {k: getattr(args, k) for k in names if getattr(args, k) is not None}


def run_experiment_command(args) -> int:
    from osteo_engine.experiments import ExperimentRequest, experiment

    request = request_from(ExperimentRequest, args, overrides=experiment_overrides(args))
    output = JobOutput(args, "experiment", unit="run")
    with output.images() as update:
        results = experiment(request, _experiment_progress(output, request), update)
    if output.as_json:
        output.done(request.out / "results.json")
    else:
        emit(results, args.json, [f"{len(results['runs'])} runs; report: {request.out / 'report.md'}"])
    return 0


def _experiment_progress(output: JobOutput, request):
    """Each finished run as a `progress` event, and a log line with its figures."""
    from osteo_engine.events import Event
    from osteo_engine.experiments import plan

    total = len(plan(list(request.methods), list(request.tables), list(request.seeds)))
    finished = []

    def progress(spec, record) -> None:
        finished.append(spec.name)
        m = record["metrics"]
        output(Event("progress", "experiment", done=len(finished), total=total, metrics={"run": spec.name, **m}))
        external = f", external AUC {record['external']['auc']:.3f}" if "external" in record else ""
        if not output.as_json:
            log(f"{spec.name}: AUC {m['auc']:.3f}, F1 {m['f1']:.3f}{external}")

    return progress
