"""Generate docs/METRICS_REFERENCE.md from a live registry: ``python -m
vectorizer.observability.reference > docs/METRICS_REFERENCE.md`` (a test checks drift)."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from prometheus_client import generate_latest
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.parser import text_string_to_metric_families

from vectorizer.observability.metrics import RequestMetrics
from vectorizer.server.app import create_app, open_node
from vectorizer.server.keys import METRICS, REPLICATION, STORE
from vectorizer.settings import load

HEADER = """# Metrics reference

Generated from the data plane's registry by
`python -m vectorizer.observability.reference > docs/METRICS_REFERENCE.md`;
a test fails when this file and the code disagree. See MONITORING.md for how to use them.

| metric | type | labels | meaning |
| --- | --- | --- | --- |
"""


async def families() -> list[tuple[str, str, list[str], str]]:
    """(name, type, label names, help) of every metric family a node exposes."""
    with tempfile.TemporaryDirectory() as tmp:
        settings = load({"data_dir": str(Path(tmp) / "data")}, env={})
        app = create_app(settings)
        await open_node(app)
        try:
            await app[STORE].create_collection("example", {"dimension": 2})
            text = generate_latest(app[METRICS].registry).decode()
            declared = {
                m._name: list(m._labelnames)  # noqa: SLF001 - label names of unused families
                for m in vars(app[METRICS]).values()
                if isinstance(m, MetricWrapperBase)
            }
            declared.update(RequestMetrics.LABELS)
        finally:
            await app[REPLICATION].stop()
            await app[STORE].close(take_snapshot=False)
    out = []
    for fam in text_string_to_metric_families(text):
        seen = {k for s in fam.samples for k in s.labels if k not in ("le", "quantile")}
        labels = sorted(seen | set(declared.get(fam.name, [])))
        name = fam.name + ("_total" if fam.type == "counter" else "")
        out.append((name, fam.type, labels, fam.documentation))
    return sorted(out)


def render(rows: list[tuple[str, str, list[str], str]]) -> str:
    lines = [
        f"| `{name}` | {kind} | {', '.join(f'`{label}`' for label in labels) or '—'} | {doc} |"
        for name, kind, labels, doc in rows
    ]
    return HEADER + "\n".join(lines) + "\n"


def main() -> None:
    print(render(asyncio.run(families())), end="")  # noqa: T201 - the output is the document


if __name__ == "__main__":
    main()
