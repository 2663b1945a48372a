import json
from types import SimpleNamespace

from training_cli.output import JobOutput


def test_image_progress_events_name_the_stage_they_count(capsys):
    output = JobOutput(SimpleNamespace(progress_json=True), "screen")
    with output.images("screening") as update:
        update(1, 3)
    with output.images() as update:
        update(2, 5)
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(e["event"], e["task"], e["done"], e["total"]) for e in events] == [
        ("progress", "screening", 1, 3),
        ("progress", "patches", 2, 5),
    ]
