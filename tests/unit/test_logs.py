"""Log formats: a client's text cannot write lines of its own into a text log."""

from __future__ import annotations

import io
import logging
import sys

import orjson
import pytest

from vectorizer.observability import logs


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_a_record_is_one_line_whatever_its_message_holds(
    fmt: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = io.StringIO()
    monkeypatch.setattr(sys, "stderr", out)
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        logs.setup("info", fmt)
        forged = (
            "/c1\n2026-01-01 00:00:00,000 ERROR vectorizer.security: FORGED\r\x00\x1b[31m\u2028"
        )
        logging.getLogger("vectorizer.test").info("POST %s: failed", forged)
        try:
            raise ValueError("boom")
        except ValueError:
            logging.getLogger("vectorizer.test").exception("and %s", "a\nb")
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
    lines = out.getvalue().splitlines()
    if fmt == "json":
        assert [orjson.loads(line)["message"] for line in lines[:1]] == [f"POST {forged}: failed"]
        return
    assert lines[0].endswith(
        "INFO vectorizer.test: POST /c1\\n2026-01-01 00:00:00,000 ERROR vectorizer.security: "
        "FORGED\\r\\x00\\x1b[31m\\u2028: failed"
    )
    assert lines[1].endswith("ERROR vectorizer.test: and a\\nb")
    assert lines[2] == "Traceback (most recent call last):"  # (the traceback below it)
    assert not any("FORGED" in line for line in lines[1:])
