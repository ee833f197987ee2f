"""Alert rules at their edges: a node restarting idle, and a search p99 threshold at the
largest latency bucket (checked by promtool, like test_alert_rules)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.operator import test_alert_rules
from tests.operator.conftest import make_cluster
from tests.operator.test_alert_rules import (
    case,
    fired,
    labels,
    pod_labels,
    run,
    series,
    without_annotations,
    write_rules,
)
from tests.operator.test_crd import schema
from vectorizer.observability import buckets
from vectorizer_operator.builders.monitoring import rule_groups
from vectorizer_operator.model import Cluster, SpecError

Json = dict[str, Any]
promtool = test_alert_rules.promtool  # (the fixture)


def check(promtool: str, tmp_path: Path, cluster: Cluster, *tests: Json) -> None:
    write_rules(tmp_path / "rules.yaml", without_annotations(rule_groups(cluster)))
    doc = {"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": list(tests)}
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    result = run(promtool, "test", "rules", "tests.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


# ---- VectorizerSnapshotTooOld and a restart -------------------------------------------

# A node idle for hours (snapshot 2 h old, sequence 41), restarted at 60m.
AGE = series("vectorizer_snapshot_age_seconds", "7200+60x160", pod="vz-1")
QUIET_TIMES = ("65m", "71m", "80m", "100m", "119m", "121m", "125m", "140m")


def quiet(*inputs: Json) -> Json:
    return case([AGE, *inputs], *(fired("VectorizerSnapshotTooOld", t) for t in QUIET_TIMES))


def test_an_idle_node_that_exported_0_while_it_recovered_does_not_alert(
    promtool: str, tmp_path: Path
) -> None:
    """Data planes exported vectorizer_wal_sequence 0 during recovery, then the real
    value again: changes() saw writes, and the alert fired 10 minutes later for a node
    that took none (as old pods still may during an upgrade)."""
    dip = series("vectorizer_wal_sequence", "41x59 0 41x100", pod="vz-1")
    check(promtool, tmp_path, make_cluster(instances=3), quiet(dip))


def test_an_idle_node_that_exported_nothing_while_it_recovered_does_not_alert(
    promtool: str, tmp_path: Path
) -> None:
    gap = series("vectorizer_wal_sequence", "41x59 _x2 41x100", pod="vz-1")
    check(promtool, tmp_path, make_cluster(instances=3), quiet(gap))


def test_writes_after_a_restart_still_alert(promtool: str, tmp_path: Path) -> None:
    writes = series("vectorizer_wal_sequence", "41x59 _ 41+5x100", pod="vz-1")
    test = case(
        [AGE, writes],
        fired("VectorizerSnapshotTooOld", "65m"),  # (pending: for 10m)
        fired("VectorizerSnapshotTooOld", "80m", pod_labels("warning", "vz-1")),
    )
    check(promtool, tmp_path, make_cluster(instances=3), test)


# ---- VectorizerSearchLatencyHigh and the largest bucket -------------------------------


def slow_searches(per_minute: int) -> list[Json]:
    """Every query slower than the largest finite bucket: all in +Inf."""
    les = [*(f"{b:g}" for b in buckets.LATENCY), "+Inf"]
    return [
        series(
            "vectorizer_search_latency_seconds_bucket",
            f"0+{per_minute}x40" if le == "+Inf" else "0x40",
            pod="vz-0",
            le=le,
        )
        for le in les
    ]


@pytest.mark.parametrize("threshold", [3.0, buckets.LATENCY[-2], buckets.LATENCY[-1]])
def test_every_accepted_p99_threshold_can_fire(
    promtool: str, tmp_path: Path, threshold: float
) -> None:
    """With the largest finite bucket at 2.5 s, histogram_quantile never returned more,
    and a threshold of 2.5 s or more never fired, even with every query taking 10 s."""
    cluster = make_cluster(instances=3, monitoring={"thresholds": {"searchP99Seconds": threshold}})
    test = case(
        slow_searches(100),
        fired("VectorizerSearchLatencyHigh", "30m", labels("warning", namespace="db", pod="vz-0")),
    )
    check(promtool, tmp_path, cluster, test)


def test_the_p99_threshold_is_bounded_by_the_largest_latency_bucket() -> None:
    """The CRD and the operator accept no threshold a p99 could never exceed: the bound
    is the data plane's own largest finite bucket."""
    largest = buckets.LATENCY[-1]
    thresholds = schema()["properties"]["spec"]["properties"]["monitoring"]["properties"][
        "thresholds"
    ]["properties"]
    assert thresholds["searchP99Seconds"]["maximum"] == largest
    make_cluster(monitoring={"thresholds": {"searchP99Seconds": largest}})
    with pytest.raises(SpecError, match=r"^spec\.monitoring\.thresholds\.searchP99Seconds: "):
        make_cluster(monitoring={"thresholds": {"searchP99Seconds": largest * 2}})
