"""`osteo screen`: a screening answer per radiograph, with its uncertainty and the research disclaimer."""

from __future__ import annotations

import csv
import sys

from osteo_engine.storage import strict_json

from .output import JobOutput, add_progress_json, command_line, emit, progress_bar, request_from

CSV_COLUMNS = ["image", "decision", "probability", "uncertainty", "reasons", "population", "error", "disclaimer"]


def add_parsers(sub) -> None:
    p = sub.add_parser("screen", help="screen radiographs: normal, osteoporosis or refer (research use only)")
    p.add_argument("inputs", nargs="+", help="radiographs, folders of radiographs, or manifest CSVs")
    p.add_argument("--model", help="screening model folder (default: the bundled demo classifier)")
    p.add_argument("--segmenter", help="segmentation model (default: the bundled one)")
    p.add_argument("--age", type=float, metavar="YEARS", help="the person's age, before what the files say")
    p.add_argument("--sex", choices=("F", "M"), help="the person's sex, before what the files say")
    p.add_argument("--json", action="store_true", help="one JSON object per image, one per line")
    p.add_argument("--csv", action="store_true", help="one CSV row per image")
    p.set_defaults(run=run_screen)

    e = sub.add_parser(
        "export-screening",
        help="package an encoder and a probe as a screening model, with a refer policy calibrated on labelled images",
    )
    e.add_argument("--encoder", required=True, help="pretraining run folder (or its encoder .safetensors)")
    e.add_argument("--probe", required=True, help="probe folder (from `osteo probe`) or its probe.safetensors")
    e.add_argument(
        "--data",
        required=True,
        help="labelled manifest the probe was trained on: its `test` split audits the refer policy",
    )
    e.add_argument(
        "--calibration",
        help="a separate labelled manifest that sizes the refer policy (default: the data's train and val splits)",
    )
    e.add_argument("--out", required=True, help="screening model folder to write")
    e.add_argument("--segmenter", help="segmentation model (default: the bundled one)")
    e.add_argument("--target-refer", type=float, default=0.15, help="share of calibration images to refer")
    e.add_argument("--synthetic", action="store_true", help="the data are phantoms: say so in the model card")
    e.add_argument("--population", help="who the model is meant for (default: adults, or synthetic adults)")
    e.add_argument("--min-age", type=float, default=18.0, metavar="YEARS", help="younger people are referred")
    e.add_argument("--json", action="store_true")
    add_progress_json(e)
    e.set_defaults(run=run_export)

    a = sub.add_parser(
        "audit-screening",
        help="screen a labelled manifest and report the refer rate, why, and the metrics of the decided images",
    )
    a.add_argument("--data", required=True, help="labelled manifest (another site's data, say)")
    a.add_argument("--split", default="all", help="a split of the manifest, or `all` (default)")
    a.add_argument("--model", help="screening model folder (default: the bundled demo classifier)")
    a.add_argument("--segmenter", help="segmentation model (default: the bundled one)")
    a.add_argument("--json", action="store_true")
    a.set_defaults(run=run_audit)


def run_screen(args) -> int:
    from osteo_engine.screening import DISCLAIMER
    from osteo_engine.screening_jobs import ScreenRequest, screen_files

    result = screen_files(request_from(ScreenRequest, args), _writer(args))
    if not (args.json or args.csv):
        print(DISCLAIMER)
    return 2 if result.failures or not result.screened else 0


def _writer(args):
    """Writes one image's answer, or its error object, on stdout in the format asked for (text errors: stderr)."""
    from osteo_engine.screening import DISCLAIMER

    table = csv.writer(sys.stdout) if args.csv else None
    if table:
        table.writerow(CSV_COLUMNS)

    def write(entry) -> None:
        result = entry.to_json()
        if table:
            table.writerow(
                [
                    result["image"],
                    result.get("decision", ""),
                    _blank(result.get("probability")),
                    _blank(result.get("uncertainty")),
                    " ".join(result.get("reasons", [])),
                    result.get("population", {}).get("note", ""),
                    result.get("error", ""),
                    DISCLAIMER,
                ]
            )
        elif args.json:
            print(strict_json(result))
        else:
            print(_text(result), file=sys.stderr if "error" in result else sys.stdout)
        sys.stdout.flush()

    return write


def _text(result: dict) -> str:
    from osteo_engine.screening import how_read, segmentation_uncertainty
    from osteo_engine.screening import shown as _shown

    if "error" in result:
        return f"{result['image']}: cannot screen: {result['error']}"
    bones = ", ".join(f"{b} {_shown(v['probability'])}" for b, v in result["bones"].items() if v["present"])
    from osteo_engine.radiogrammetry import measurement_line

    population = result.get("population")  # answers saved before the population check have none
    read = how_read(result["orientation"])
    return (
        f"{result['image']}: {result['decision'].upper()} (probability {_shown(result['probability'])}, "
        f"threshold {_shown(result['threshold'])}, segmentation {segmentation_uncertainty(result)})\n"
        f"  {' '.join(result['reasons'])}\n  bones: {bones or 'none found'}"
        + (f"\n  {population['note']}" if population and population["within"] is not False else "")
        + (f"\n  {measurement_line(result['radiogrammetry'])}" if result.get("radiogrammetry") else "")
        + (f"\n  read {read}" if read else "")
    )


def _blank(value: float | None) -> str | float:
    return "" if value is None else value


def run_export(args) -> int:
    from osteo_engine.screening_model import ExportRequest, export_screening_model

    request = request_from(ExportRequest, args, command=command_line())
    output = JobOutput(args, "export-screening")
    with output.images("screening") as update:
        card = export_screening_model(request, update)
    if output.as_json:
        output.done(request.out)
        return 0
    parts = card.refer_calibration
    emit(
        card.to_json(),
        args.json,
        [f"refer policy {card.refer_policy}"]
        + [
            f"{part}: {parts[part]['images']} images, refer rate {parts[part]['refer_rate']:.1%}, "
            f"AUC {parts[part]['all_images']['auc']:.3f}"
            for part in ("calibration", "test")
        ],
    )
    return 0


def run_audit(args) -> int:
    from osteo_engine.screening_jobs import AuditRequest, audit_screening

    with progress_bar(0, "screening") as update:
        result = audit_screening(request_from(AuditRequest, args), update)
    decided = result.get("decided_images", {})
    emit(
        result,
        args.json,
        [
            f"{result['images']} images, refer rate {result['refer_rate']:.1%} "
            f"({', '.join(f'{k}: {v}' for k, v in result['refer_reasons'].items())})",
            f"AUC over every image {result['all_images']['auc']:.3f}",
        ]
        + [f"decided images: {k} {v:.3f}" for k, v in decided.items()],
    )
    return 0
