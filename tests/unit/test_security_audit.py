"""The audit log: JSON lines, rotated by size and count, never broken by hostile text."""

from __future__ import annotations

import stat
from pathlib import Path

import orjson

from vectorizer.security.audit import MAX_FIELD, AuditLog


def lines(path: Path) -> list[dict[str, object]]:
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
