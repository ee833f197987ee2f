"""The audit log: JSON lines, rotated by size and count, never broken by hostile text."""

from __future__ import annotations

import asyncio
import datetime as dt
import stat
import time
from collections.abc import Callable
from pathlib import Path

import orjson

from vectorizer.security.audit import MAX_FIELD, AuditLog


def lines(path: Path) -> list[dict[str, object]]:
    if not path.exists():
        return []
    return [orjson.loads(line) for line in path.read_text().splitlines()]


def test_lines_and_hostile_values(tmp_path: Path) -> None:
    path = tmp_path / "audit" / "audit.jsonl"
    log = AuditLog(path, max_bytes=1 << 20, backups=2)
    log.record("request", principal="key:abc", collection='evil\n{"event":"forged"}\u202e')
    log.record("authentication_failed", collection="x" * 10_000, status=401)
    log.close()
    got = lines(path)
    assert [g["event"] for g in got] == ["request", "authentication_failed"]
    assert got[0]["collection"] == 'evil\n{"event":"forged"}\u202e'
    assert len(got[1]["collection"]) == MAX_FIELD  # type: ignore[arg-type]
    assert str(got[0]["time"]).endswith("Z")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    log.record("request")  # after close: dropped, not an error


def test_rotation_by_size_and_count(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path, max_bytes=2048, backups=3)
    for i in range(500):
        log.record("request", n=i, padding="p" * 40)
    log.close()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["audit.jsonl", "audit.jsonl.1", "audit.jsonl.2", "audit.jsonl.3"]
    for p in tmp_path.iterdir():
        assert p.stat().st_size <= 2048
        assert all(isinstance(line["n"], int) for line in lines(p))
    assert lines(path)[-1]["n"] == 499


def test_a_flood_of_refusals_is_counted_not_written_line_by_line(tmp_path: Path) -> None:
    """Anyone who reaches the port can send failed logins without end: beyond a burst
    per source (and for all sources together) they are counted into ``audit_suppressed``
    lines, so they cannot rotate the calls that matter out of the log. Every line was
    written before (3,000 refusals rotated a 200 KB log)."""
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path, max_bytes=1 << 20, backups=1)
    log.record("request", principal="key:admin", route="/auth/keys", source="10.0.0.1")
    for _ in range(3000):
        log.record("authentication_failed", status=401, source="10.0.0.9")
    for i in range(300):  # from many sources: the global budget holds
        log.record("rate_limited", status=429, source=f"10.1.{i // 250}.{i % 250}")
    log.record("request", principal="key:admin", route="/collections", source="10.0.0.1")
    log.close()  # (writes what is still counted)
    got = lines(path)
    failed = [g for g in got if g["event"] == "authentication_failed"]
    limited = [g for g in got if g["event"] == "rate_limited"]
    counted = {
        (g["of"], g["source"]): g["suppressed"] for g in got if g["event"] == "audit_suppressed"
    }
    assert 20 <= len(failed) < 40 and len(limited) <= 200
    assert sum(n for (of, _), n in counted.items() if of == "authentication_failed") == 3000 - len(
        failed
    )
    assert sum(n for (of, _), n in counted.items() if of == "rate_limited") == 300 - len(limited)
    assert [g["route"] for g in got if g["event"] == "request"] == ["/auth/keys", "/collections"]
    assert len(got) < 300


async def _lines_when(path: Path, done: Callable[[list[dict[str, object]]], bool]) -> bool:
    """Whether the writer thread has written lines that satisfy ``done`` within 2 s."""
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        if done(lines(path)):
            return True
        await asyncio.sleep(0.02)
    return False


def _refused(got: list[dict[str, object]]) -> int:
    return sum(1 for g in got if g["event"] == "authentication_failed")


def _suppressed(got: list[dict[str, object]]) -> int:
    return sum(int(str(g["suppressed"])) for g in got if g["event"] == "audit_suppressed")


async def test_suppressed_refusals_are_written_within_a_second_when_nothing_follows(
    tmp_path: Path,
) -> None:
    """SECURITY.md: suppressed refusals are counted and written once a second. They were
    written only with the next audited line, so a burst followed by silence left no
    trace until the node stopped."""
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path, max_bytes=1 << 20, backups=1)
    try:
        for _ in range(100):
            log.record("authentication_failed", status=401, source="10.0.0.9")
        started = time.monotonic()
        assert await _lines_when(path, lambda got: _suppressed(got) > 0)
        assert time.monotonic() - started < 2.0
        got = lines(path)
        assert _suppressed(got) == 100 - _refused(got) > 0
        # A second burst is counted anew and written at most once a second.
        for _ in range(30):
            log.record("authentication_failed", status=401, source="10.0.0.9")
        assert await _lines_when(path, lambda got: _suppressed(got) == 130 - _refused(got))
        summaries = [g for g in lines(path) if g["event"] == "audit_suppressed"]
        assert len(summaries) == 2
        first, second = (dt.datetime.fromisoformat(str(g["time"])) for g in summaries)
        assert (second - first).total_seconds() >= 0.9
    finally:
        log.close()


async def test_closing_writes_the_counts_once_and_stops_the_timer(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path, max_bytes=1 << 20, backups=1)
    for _ in range(50):
        log.record("rate_limited", status=429, source="10.0.0.7")
    log.close()
    got = lines(path)
    assert _suppressed(got) == 50 - sum(1 for g in got if g["event"] == "rate_limited")
    await asyncio.sleep(1.3)  # the timer, cancelled, writes nothing more (and raises nothing)
    assert lines(path) == got
