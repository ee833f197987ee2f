from __future__ import annotations

from pathlib import Path

from vectorizer.observability.reference import families, render

DOC = Path(__file__).resolve().parents[2] / "docs" / "METRICS_REFERENCE.md"


async def test_reference_matches_the_registry() -> None:
    rows = await families()
    assert len(rows) > 20
    assert DOC.read_text() == render(rows), (
        "docs/METRICS_REFERENCE.md is stale: run "
        "python -m vectorizer.observability.reference > docs/METRICS_REFERENCE.md"
    )


async def test_no_metric_of_a_query_cache() -> None:
    """There is no query cache: nothing updated ``vectorizer_cache_*``."""
    assert not [name for name, *_ in await families() if name.startswith("vectorizer_cache")]
