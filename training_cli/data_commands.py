"""Subcommands about data: inspect, phantom, oracle, cohort, export, import, contact sheet."""

from __future__ import annotations

import time
from pathlib import Path

from osteo_engine import load_radiograph
from osteo_engine.errors import ConfigError

from .output import emit, log, progress_bar


def add_parsers(sub) -> None:
    p = sub.add_parser("inspect", help="describe a radiograph (size, bit depth, spacing, window)")
    p.add_argument("image")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=inspect)

    p = sub.add_parser("phantom", help="generate a synthetic hand-radiograph cohort")
    p.add_argument("out_dir")
    p.add_argument("--subjects", type=int, required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--raters", type=int, default=3)
    p.add_argument("--size", default="1024x1280", help="WxH, e.g. 2515x3588 for the paper's size")
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=phantom)

    p = sub.add_parser("oracle", help="the limit AUC of a phantom cohort's latent variables")
    p.add_argument("cohort_dir")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=oracle)

    p = sub.add_parser("cohort", help="validate a manifest CSV and summarise it")
    p.add_argument("manifest")
    p.add_argument("--seed", type=int, default=0, help="seed of the 80/10/10 split when the manifest has none")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=cohort)

    p = sub.add_parser("export", help="export a project's annotations")
    p.add_argument("project")
    p.add_argument("--format", choices=["png", "coco", "dicom-seg"], required=True)
    p.add_argument("--out", required=True, help="folder (png, dicom-seg) or .json file (coco)")
    p.add_argument(
        "--keep-patient",
        action="store_true",
        help="dicom-seg: copy the patient's name, ID and study from the source (for the hospital's own "
        "PACS); by default a SEG is de-identified, with a pseudonym and new UIDs",
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=export)

    p = sub.add_parser("import", help="import label maps made elsewhere into a project")
    p.add_argument("project")
    p.add_argument("--format", choices=["png", "coco"], required=True)
    p.add_argument("--source", required=True, help="folder of PNG label maps, or a COCO .json file")
    p.add_argument("--rater", required=True)
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=import_)

    p = sub.add_parser("contact-sheet", help="draw a phantom cohort's radiographs, optionally beside real ones")
    p.add_argument("cohort_dir")
    p.add_argument("--out", required=True)
    p.add_argument("--count", type=int, default=16)
    p.add_argument("--real", nargs="*", default=[], help="real radiographs to draw beside the phantoms")
    p.set_defaults(run=contact_sheet)


def inspect(args) -> int:
    image = load_radiograph(args.image)
    info = {
        "width": image.width,
        "height": image.height,
        "bits_stored": image.bits_stored,
        "pixel_spacing_mm": list(image.pixel_spacing_mm) if image.pixel_spacing_mm else None,
        "photometric": image.photometric,
        "modality": image.modality,
        "window": {"center": round(image.window[0], 6), "width": round(image.window[1], 6)},
    }
    spacing = (
        "unknown"
        if info["pixel_spacing_mm"] is None
        else " × ".join(f"{v:g}" for v in info["pixel_spacing_mm"]) + " mm"
    )
    emit(
        info,
        args.json,
        [
            f"{Path(args.image).name}: {image.width} × {image.height} pixels, {image.bits_stored} bits stored",
            f"pixel spacing: {spacing}",
            f"photometric: {image.photometric}   modality: {image.modality or 'n/a'}",
            f"default window: centre {image.window[0]:.3f}, width {image.window[1]:.3f} (of 0–1)",
        ],
    )
    return 0


def _parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ConfigError(f"--size {text!r} is not WIDTHxHEIGHT, e.g. 1024x1280.") from None
    return w, h


def phantom(args) -> int:
    from osteo_engine.phantom import PhantomConfig, write_cohort

    config = PhantomConfig(args.subjects, args.seed, args.raters, _parse_size(args.size))
    start = time.perf_counter()
    with progress_bar(config.subjects, "phantom") as update:
        manifest = write_cohort(args.out_dir, config, workers=args.workers, progress=update)
    seconds = time.perf_counter() - start
    emit(
        {"manifest": str(manifest), "subjects": config.subjects, "seconds": round(seconds, 2)},
        args.json,
        [f"wrote {config.subjects} subjects to {args.out_dir} in {seconds:.1f} s", f"manifest: {manifest}"],
    )
    return 0


def oracle(args) -> int:
    from osteo_engine.phantom import run_oracle

    r = run_oracle(args.cohort_dir)
    auc_test = None if r.auc_test is None else round(r.auc_test, 4)
    emit(
        {
            "auc": round(r.auc, 4),
            "auc_test": auc_test,
            "train_subjects": r.train_subjects,
            "test_subjects": r.test_subjects,
            "fresh_subjects": r.fresh_subjects,
            "features": r.features,
        },
        args.json,
        [
            f"oracle AUC on {r.fresh_subjects} fresh subjects: {r.auc:.3f}",
            f"oracle AUC on the test split ({r.test_subjects} subjects): "
            + ("n/a (one class)" if auc_test is None else f"{auc_test:.3f}"),
        ],
    )
    return 0


def cohort(args) -> int:
    from osteo_engine.cohort import read_manifest

    summary = read_manifest(args.manifest, seed=args.seed).summary()
    emit(summary, args.json, [f"{k}: {v}" for k, v in summary.items()])
    return 0


def export(args) -> int:
    from osteo_engine.annotations import AnnotationProject
    from osteo_engine.exports import coco, dicom_seg, png

    project = AnnotationProject.open(args.project)
    if args.format == "png":
        written = png.export_png(project, args.out)
    elif args.format == "coco":
        written = [coco.export_coco(project, args.out)]
    else:
        written = dicom_seg.export_dicom_seg(project, args.out, keep_patient=args.keep_patient)
    emit({"written": [str(p) for p in written]}, args.json, [f"wrote {len(written)} file(s) to {args.out}"])
    return 0


def import_(args) -> int:
    from osteo_engine.annotations import AnnotationProject
    from osteo_engine.exports import coco, png

    project = AnnotationProject.open(args.project)
    if args.format == "png":
        ids = png.import_png(project, args.source, args.rater)
    else:
        ids = coco.import_coco(project, args.source, args.rater)
    emit({"imported": ids}, args.json, [f"imported annotations for {len(ids)} image(s)"])
    return 0


def contact_sheet(args) -> int:
    from osteo_engine.phantom.sheet import write_contact_sheet

    path = write_contact_sheet(args.cohort_dir, args.out, count=args.count, real=args.real)
    log(f"wrote {path}")
    return 0
