"""Reading a store's write-ahead log whole, in tests (the server reads it a bounded chunk
at a time: ``Store.log_reader``)."""

from __future__ import annotations

from vectorizer.engine.store import Store
from vectorizer.engine.wal import LogReader

CHUNK = 1000


def read_all(reader: LogReader, chunk: int = CHUNK) -> list[list[tuple[int, bytes]]]:
    """Every chunk ``reader`` gives, of about ``chunk`` bytes each."""
    chunks: list[list[tuple[int, bytes]]] = []
    for _ in range(10_000):  # (bounded: a reader that never ends fails here)
        got = reader.read(chunk)
        assert got is not None
        if not got:
            return chunks
        chunks.append(got)
    raise AssertionError("the reader never ended")


def logged(store: Store, from_seq: int = 1) -> list[tuple[int, bytes]]:
    """The committed records of ``store``'s log from ``from_seq`` on: (sequence, body)."""
    reader = store.log_reader(from_seq)
    assert reader is not None, f"the log no longer reaches back to {from_seq}"
    return [record for got in read_all(reader, 1 << 20) for record in got]
