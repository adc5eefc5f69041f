"""The live view of `dev`: what it shows on a terminal and as plain lines."""

from __future__ import annotations

import io

from clickstream_devkit.progress import ProgressView, Snapshot


def _snap(t: float, stored: int) -> Snapshot:
    return Snapshot(elapsed_s=t, produced=1000, stored=stored, same_content=2, dead_lettered=30.0, catalog=5.0,
                    inflight=0.0, calls=10.0, events_in_calls=900.0, throttled=0.0)  # fmt: skip


def test_the_terminal_view_shows_stored_like_the_summary_and_what_it_waits_for() -> None:
    out = io.StringIO()
    view = ProgressView(out, interactive=True, expected=1000, header="h")
    view.status = "waiting for: 68 valid events to be stored"
    view.render(_snap(1.0, 900))
    text = out.getvalue()
    assert "  stored               900" in text and "(+ 2 same-content dups)" in text
    assert "waiting for: 68 valid events to be stored" in text
    assert "delivered" not in text, "one word for one count: the summary says stored"


def test_plain_lines_carry_the_status_only_when_it_changes() -> None:
    out = io.StringIO()
    view = ProgressView(out, interactive=False, expected=1000, header="h", plain_every_s=1.0)
    view.status = "waiting for: the generator to finish producing"
    for t in (1.0, 2.0, 3.0):
        view.render(_snap(t, 100 * int(t)))
    view.status = "done: every event accounted for"
    view.render(_snap(4.0, 968), final=True)
    lines = out.getvalue().splitlines()
    assert lines.count("progress waiting for: the generator to finish producing") == 1
    assert lines[-1] == "progress done: every event accounted for"
    assert sum(line.startswith("progress t=") for line in lines) == 4
    assert "stored=968" in lines[-2]
