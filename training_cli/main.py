"""Entry point of the `osteo` command."""

from __future__ import annotations

import argparse
import sys

from osteo_engine.errors import OsteoError
from osteo_engine.events import Cancelled

from . import data_commands, screen_commands, segmentation_commands, ssl_commands


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="osteo", description="Osteoporosis screening workstation (research tool).")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    data_commands.add_parsers(sub)
    segmentation_commands.add_parsers(sub)
    segmentation_commands.add_segment_parser(sub)
    ssl_commands.add_parsers(sub)
    ssl_commands.add_probe_parser(sub)
    ssl_commands.add_experiment_parser(sub)
    screen_commands.add_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except Cancelled as exc:
        _report_error(args, exc, "cancelled")
        return 130
    except OsteoError as exc:
        _report_error(args, exc)
        return 2
    except OSError as exc:  # full disk, permissions: say so plainly instead of a traceback
        _report_error(args, f"{exc.strerror or exc}" + (f" ({exc.filename})" if exc.filename else ""))
        return 2
    except KeyboardInterrupt:
        print(f"osteo {args.command}: interrupted", file=sys.stderr)
        return 130


def _report_error(args, exc: Exception | str, kind: str = "error") -> None:
    """The sentence on stderr; with --progress-json also the last line on stdout, an `error` (or `cancelled`)
    event."""
    print(f"osteo {args.command}: {exc}", file=sys.stderr)
    if getattr(args, "progress_json", False):
        from osteo_engine.events import Event
        from osteo_engine.storage import strict_json

        print(strict_json(Event(kind, args.command, message=str(exc)).to_json()), flush=True)


if __name__ == "__main__":  # `python -m training_cli.main`, as the app's Jobs panel starts jobs
    raise SystemExit(main())
