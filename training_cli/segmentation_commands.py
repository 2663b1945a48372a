"""Subcommands about bone masks: annotate-auto, prompt, measure, overlay-sheet, segment."""

from __future__ import annotations

from pathlib import Path

from osteo_engine import registry
from osteo_engine.anatomy import BONE_NAMES

from .output import JobOutput, add_progress_json, command_line, emit, progress_bar, request_from


def add_parsers(sub) -> None:
    p = sub.add_parser("annotate-auto", help="bone masks from atlas landmarks with SAM (resumable)")
    p.add_argument("--images", required=True, help="folder of radiographs named as in the landmark CSV")
    p.add_argument("--landmarks", required=True, help="landmark CSV (image, then x,y per landmark)")
    p.add_argument("--out", required=True, help="annotation project to create or extend")
    p.add_argument("--splits", help="CSV of image,split; default: splits.csv beside the landmarks, if any")
    p.add_argument("--rater", default="sam-auto")
    p.add_argument("--overwrite", action="store_true", help="redo images this rater already annotated")
    p.add_argument("--limit", type=int, help="only the first N images")
    p.add_argument(
        "--bones",
        nargs="+",
        choices=BONE_NAMES,
        help="make only these bones again in images already annotated; keep the rest",
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=annotate_auto)

    p = sub.add_parser("prompt", help="bone masks from clicks and boxes, answered as the Annotate workspace does")
    p.add_argument("image", help="a radiograph")
    p.add_argument(
        "--prompts",
        required=True,
        help='JSON list of {"bone": "M2", "points": [[x, y, 1 or 0], ...], "box": [x0, y0, x1, y1] or null}',
    )
    p.add_argument("--out", required=True, help="folder for one <bone>.png mask (0/255) per bone")
    p.add_argument("--segmenter", help="segmentation model whose bones answer the clicks (default: the bundled one)")
    p.add_argument("--sam", choices=registry.SAM_KINDS, default="litemedsam")
    p.add_argument("--sam-checkpoint", help="a vit_b / vit_l / vit_h checkpoint for --sam")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=prompt_image)

    p = sub.add_parser("measure", help="radiogrammetry: each metacarpal's cortical thickness, width, MCI and BHI")
    p.add_argument("image", help="a radiograph")
    p.add_argument("--labels", help="its label map (PNG, 0 background, 1–7 bones); default: the segmenter's")
    p.add_argument("--segmenter", help="segmentation model when no --labels (default: the bundled one)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=measure_image)

    p = sub.add_parser("overlay-sheet", help="contact sheet of a project's bone masks over their images")
    p.add_argument("project")
    p.add_argument("--out", required=True)
    p.add_argument("--rater")
    p.add_argument("--columns", type=int, default=8)
    p.set_defaults(run=overlay_sheet)


def annotate_auto(args) -> int:
    from osteo_engine.autoannotate import AutoAnnotateRequest, auto_annotate

    with progress_bar(0, "annotate-auto") as update:
        summary = auto_annotate(request_from(AutoAnnotateRequest, args), update)
    emit(summary.to_json(), args.json, summary.lines())
    return 0


def prompt_image(args) -> int:
    from osteo_engine.click_prompts import PromptRequest, prompt_image

    summary = prompt_image(request_from(PromptRequest, args))
    lines = [
        f"{s['bone']}: {s['area']} pixels, SAM score {s['score']:.3f}"
        + ("" if s["prior_used"] else " (no segmenter bone: square box)")
        for s in summary
    ]
    emit({"image": Path(args.image).name, "out": args.out, "bones": summary}, args.json, lines)
    return 0


def measure_image(args) -> int:
    from osteo_engine.radiogrammetry import MeasureRequest, measure_image, measurement_line

    result = measure_image(request_from(MeasureRequest, args))
    lines = [f"{result['image']}: {measurement_line(result)}"] + [
        f"  {bone}: {m['quality']}" for bone, m in result["bones"].items() if m["quality"] != "ok"
    ]
    emit(result, args.json, lines)
    return 0


def overlay_sheet(args) -> int:
    from osteo_engine.annotations import AnnotationProject
    from osteo_engine.sheets import project_overlay_sheet

    path = project_overlay_sheet(AnnotationProject.open(args.project), args.out, rater=args.rater, columns=args.columns)
    emit({"written": str(path)}, False, [f"wrote {path}"])
    return 0


def add_segment_parser(sub) -> None:
    p = sub.add_parser("segment", help="train the bone segmenter or segment radiographs")
    seg = p.add_subparsers(dest="segment_command", required=True, metavar="ACTION")
    t = seg.add_parser("train", help="train the mixture segmenter with the optimal-transport loss")
    t.add_argument("--data", nargs="+", required=True, help="annotation project folder(s) or manifest CSV(s)")
    t.add_argument("--preset", choices=registry.PRESETS, default="cpu-small")
    t.add_argument("--out", required=True, help="run folder")
    t.add_argument("--resume", action="store_true")
    t.add_argument("--epochs", type=int, help="override the preset's number of epochs")
    t.add_argument(
        "--repeat",
        type=int,
        nargs="+",
        metavar="N",
        help="per --data source, how often its training images occur in an epoch (default 1 each)",
    )
    t.add_argument("--seed", type=int)
    t.add_argument(
        "--init",
        help="warm start from a segmenter .safetensors of the preset's architecture, or from a per-module one with "
        "the same U-Net (its U-Net and most-routed module's head carry over; the mixture starts anew)",
    )
    t.add_argument("--lr", type=float, help="override the preset's peak learning rate")
    t.add_argument(
        "--trunk-lr-scale",
        type=float,
        help="the U-Net's learning rate as a share of the heads' and router's, (0, 1] (default 1)",
    )
    t.add_argument(
        "--background-weight",
        type=float,
        help="the background's weight in the cross-entropy, (0, 1] (default 0.1; the card's background_logit_offset, "
        "−log of it, undoes the tilt at prediction)",
    )
    t.add_argument(
        "--anneal-fraction",
        type=float,
        help="share of training by whose end γ has risen to 1 (0: γ = 1 throughout, for a warm start)",
    )
    t.add_argument("--hold-fraction", type=float, help="share of training for which γ first stays at 1/(K·S)")
    t.add_argument("--samples", type=int, help="override the preset's samples per module and training image (S)")
    t.add_argument(
        "--module-cap",
        type=float,
        help="the most of a rater's mass one module's samples may take, 1/K–1 (default 1, MoSE's coupling)",
    )
    t.add_argument(
        "--module-share",
        type=float,
        help="the most of an image's raters' mass one module's samples may take, 1/K–1 (default 1, MoSE's)",
    )
    t.add_argument(
        "--latent-size",
        type=int,
        help="override the preset's latent size L per module (2^L ≥ K gives every module its own corner prior)",
    )
    t.add_argument(
        "--input-size", type=int, nargs=2, metavar=("WIDTH", "HEIGHT"), help="override the preset's network input size"
    )
    t.add_argument(
        "--select-by",
        choices=registry.CHECKPOINT_SELECTION,
        default="ged",
        help="best checkpoint: lowest validation GED at the network's input (default, as MoSE), the same with every "
        "validation radiograph segmented at full size each epoch (ged-full: as evaluate and the app read it; about "
        "1-3 s an image more), or highest mean Dice",
    )
    t.add_argument("--json", action="store_true")
    add_progress_json(t)
    t.set_defaults(run=segment_train)
    r = seg.add_parser("predict", help="bone label maps, uncertainty maps and a JSON summary per image")
    r.add_argument("images", nargs="+")
    r.add_argument("--out", required=True)
    r.add_argument("--model", help="a .safetensors segmenter (default: the bundled model)")
    r.add_argument("--samples", type=int, default=4, help="samples per module")
    r.add_argument(
        "--anatomical-order",
        action="store_true",
        help="give each metacarpal part one identity, in order across the hand",
    )
    r.add_argument(
        "--refine",
        choices=registry.REFINERS,
        default="none",
        help="redraw each bone found with LiteMedSAM from a box made of the network's mask",
    )
    r.add_argument(
        "--second-opinion",
        action="store_true",
        help="also score each map against LiteMedSAM's redraw of its bones (sam_disagreement, combined; about 6 s "
        "an image on 2 cores)",
    )
    r.add_argument(
        "--save-samples",
        action="store_true",
        help="also write every sample's label map (K·S of them) under OUT/samples/, listed in the JSON",
    )
    r.add_argument("--json", action="store_true")
    r.set_defaults(run=segment_predict)
    add_evaluate_parser(seg)
    add_publish_parser(seg)
    add_fit_errors_parser(seg)


def segment_train(args) -> int:
    from osteo_engine.segmentation.jobs import SegmentTrainRequest, segment_train_job

    request = request_from(SegmentTrainRequest, args, command=command_line())
    output = JobOutput(args, "segment train")
    with output.cancellable():
        result = segment_train_job(request, events=output, cancel=output.cancel)
    if not output.as_json:
        emit(result.to_json(), args.json, [result.describe(args.select_by)])
    return 0


def segment_predict(args) -> int:
    from osteo_engine.segmentation.jobs import PredictRequest, predict_images

    with progress_bar(len(args.images), "segment") as update:
        result = predict_images(request_from(PredictRequest, args), update)
    emit(result.to_json(), args.json, [f"segmented {len(result.results)} image(s) into {result.out}"])
    return 0


def add_evaluate_parser(seg) -> None:
    e = seg.add_parser("evaluate", help="Dice per bone, bones found and landmark checks on a manifest's split")
    e.add_argument("--data", required=True, help="manifest CSV whose folder holds the annotation project")
    e.add_argument("--split", default="val")
    e.add_argument("--model", help="a .safetensors segmenter (default: the bundled model)")
    e.add_argument("--landmarks", help="atlas landmark CSV, for the landmark checks")
    e.add_argument("--samples", type=int, default=4)
    e.add_argument("--refine", choices=registry.REFINERS, default="none", help="as for predict")
    e.add_argument("--second-opinion", action="store_true", help="also rank the images by the scores made with SAM")
    e.add_argument(
        "--anatomical-order",
        action="store_true",
        help="give each metacarpal part one identity, in order across the hand",
    )
    e.add_argument(
        "--truth",
        action="store_true",
        help="score against a phantom cohort's true label maps instead of its raters' maps",
    )
    e.add_argument("--json", action="store_true")
    e.set_defaults(run=segment_evaluate)
    a = seg.add_parser(
        "agreement",
        help="Dice between the raters of a manifest's split (or each rater against "
        "a phantom's truth): the ceiling for a model scored against them",
    )
    a.add_argument("--data", required=True, help="manifest CSV whose folder holds the annotation project")
    a.add_argument("--split", default="test")
    a.add_argument("--truth", action="store_true", help="each rater against the phantom's true label maps")
    a.add_argument("--json", action="store_true")
    a.set_defaults(run=segment_agreement)


def segment_evaluate(args) -> int:
    from osteo_engine.segmentation.jobs import EvaluateRequest, evaluate_job

    with progress_bar(0, "evaluate") as update:
        result = evaluate_job(request_from(EvaluateRequest, args, command=command_line()), update)
    _emit_dice(result, args)
    return 0


def segment_agreement(args) -> int:
    from osteo_engine.segmentation.jobs import AgreementRequest, agreement_job

    _emit_dice(agreement_job(request_from(AgreementRequest, args, command=command_line())), args)
    return 0


def _emit_dice(result: dict, args) -> None:
    lines = [
        f"{result['images']} images ({args.split}): mean Dice {result['mean_dice']}"
        + (f", all 7 bones found on {result['all_bones_found_rate']:.1%}" if "all_bones_found_rate" in result else ""),
        "Dice per bone: " + ", ".join(f"{b} {v}" for b, v in result["dice"].items()),
    ]
    if "landmark_hit_rate" in result:
        lines.append(f"landmark hits {result['landmark_hit_rate']:.1%}, no-spill {result['no_spill_rate']:.1%}")
    emit(result, args.json, lines)


def add_publish_parser(seg) -> None:
    p = seg.add_parser("publish", help="copy a checkpoint with its card and evaluations (e.g. into resources/models)")
    p.add_argument("checkpoint")
    p.add_argument("--out", required=True)
    p.add_argument(
        "--evaluation",
        nargs="*",
        default=[],
        metavar="NAME=FILE.json",
        help="results of `osteo segment evaluate --json` to record in the model card",
    )
    p.add_argument("--note", default="", help="provenance to record in the model card (data versions, init)")
    p.set_defaults(run=segment_publish)


def segment_publish(args) -> int:
    import json

    from osteo_engine.errors import ConfigError
    from osteo_engine.runs import publish_checkpoint

    evaluations = {}
    for item in args.evaluation:
        name, _, path = item.partition("=")
        if not path:
            raise ConfigError(f"--evaluation {item!r} is not NAME=FILE.json")
        evaluations[name] = json.loads(Path(path).read_text())
    out = publish_checkpoint(args.checkpoint, args.out, evaluations, args.note)
    emit({"written": str(out)}, False, [f"wrote {out} and its model card"])
    return 0


def add_fit_errors_parser(seg) -> None:
    f = seg.add_parser(
        "fit-errors",
        help="fit a segmenter's error map (where its label map is likely wrong) to annotated manifests' train split",
    )
    f.add_argument("--data", nargs="+", required=True, type=Path, help="manifest CSVs of annotation projects")
    f.add_argument("--model", type=Path, help="a .safetensors segmenter (default: the bundled model)")
    f.add_argument("--out", type=Path, help="default: NAME.errors.safetensors beside the segmenter, where it is used")
    f.add_argument("--pixels-per-manifest", type=int, help="train pixels from each manifest (default 2,000,000)")
    f.add_argument("--epochs", type=int, help="default 4")
    f.add_argument("--seed", type=int)
    f.add_argument("--json", action="store_true")
    add_progress_json(f)
    f.set_defaults(run=segment_fit_errors)


def segment_fit_errors(args) -> int:
    from osteo_engine.segmentation.error_fit import ErrorMapRequest, fit_error_map_job

    output = JobOutput(args, "fit-errors", unit="image")
    with output.cancellable(), output.images("fit-errors") as update:
        result = fit_error_map_job(request_from(ErrorMapRequest, args, command=command_line()), update, output.cancel)
    if output.as_json:
        output.done(result.path)
        return 0
    lines = [f"wrote {result.path}: {result.train_pixels} pixels of {result.train_images} train images"]
    lines += [f"{m} val ({e['images']} images), pixel AUROC {e['pixel_auroc']}" for m, e in result.evaluations.items()]
    emit({"written": str(result.path), "evaluations": result.evaluations}, args.json, lines)
    return 0
