"""The alert rules, checked and unit-tested by promtool against synthetic series.

Every alert has a case where it fires and one where it stays quiet. The rules file is
rendered from the builder, so what Prometheus runs is exactly what is tested here.
"""

from __future__ import annotations

import copy
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.operator.conftest import make_cluster
from tests.tools import debian_tool
from vectorizer_operator.builders.monitoring import alerts, rule_groups
from vectorizer_operator.model import Cluster

ROOT = Path(__file__).resolve().parents[2]
RUNBOOKS = ROOT / "docs" / "runbooks"

Json = dict[str, Any]
CLUSTER = {"namespace": "db", "vectorizer_cluster": "vz"}


def series(name: str, values: str, **labels: str) -> Json:
    matchers = ", ".join(f'{k}="{v}"' for k, v in {**CLUSTER, **labels}.items())
    return {"series": f"{name}{{{matchers}}}", "values": values}


def fired(alert: str, at: str, *expected: Json) -> Json:
    return {
        "eval_time": at,
        "alertname": alert,
        "exp_alerts": [{"exp_labels": e} for e in expected],
    }


def labels(severity: str, **extra: str) -> Json:
    return {"severity": severity, **extra}


def pod_labels(severity: str, pod: str) -> Json:
    return labels(severity, **CLUSTER, pod=pod)


def case(inputs: list[Json], *checks: Json) -> Json:
    return {"interval": "1m", "input_series": inputs, "alert_rule_test": list(checks)}


def role(pod: str, current: str) -> list[Json]:
    return [
        series("vectorizer_replication_role", "1x30" if r == current else "0x30", pod=pod, role=r)
        for r in ("primary", "replica", "fenced")
    ]


def healthy_roles() -> list[Json]:
    return role("vz-0", "primary") + role("vz-1", "replica") + role("vz-2", "replica")


def requests(rate_per_min: int, code: str, errors_per_min: int) -> list[Json]:
    return [
        series(
            "vectorizer_http_requests_total",
            f"0+{rate_per_min}x30",
            pod="vz-0",
            method="POST",
            route="/collections/{name}/search",
            status="200",
        ),
        series("vectorizer_api_errors_total", f"0+{errors_per_min}x30", pod="vz-0", code=code),
    ]


def search_buckets(fast: int, slow: int) -> list[Json]:
    """Per minute: ``fast`` queries under 0.1s, ``slow`` between 0.1s and 1s."""
    return [
        series("vectorizer_search_latency_seconds_bucket", f"0+{fast}x30", pod="vz-0", le="0.1"),
        series(
            "vectorizer_search_latency_seconds_bucket", f"0+{fast + slow}x30", pod="vz-0", le="1"
        ),
        series(
            "vectorizer_search_latency_seconds_bucket",
            f"0+{fast + slow}x30",
            pod="vz-0",
            le="+Inf",
        ),
    ]


MIB = 1 << 20


def disk(pod: str, free_mib: int, reserve_mib: int) -> list[Json]:
    return [
        series("vectorizer_disk_free_bytes", f"{free_mib * MIB}x20", pod=pod),
        series("vectorizer_disk_reserve_bytes", f"{reserve_mib * MIB}x20", pod=pod),
    ]


def memory(pod: str, anonymous_mib: int, high_water_mib: int) -> list[Json]:
    return [
        series("vectorizer_memory_anonymous_bytes", f"{anonymous_mib * MIB}x20", pod=pod),
        series("vectorizer_memory_high_water_bytes", f"{high_water_mib * MIB}x20", pod=pod),
    ]


def refused(code: str, pod: str = "vz-0") -> Json:
    return labels("critical", **CLUSTER, pod=pod, code=code)


# alert -> (a case where it fires, a case where it stays quiet)
CASES: dict[str, tuple[Json, Json]] = {
    "VectorizerInstanceDown": (
        case(
            [
                series("up", "0x10", pod="vz-1"),
                series("vectorizer_ready", "0x10", pod="vz-2"),
            ],
            fired(
                "VectorizerInstanceDown",
                "6m",
                pod_labels("critical", "vz-1"),
                pod_labels("critical", "vz-2"),
            ),
        ),
        case(
            [series("up", "1x10", pod="vz-1"), series("vectorizer_ready", "1x10", pod="vz-1")],
            fired("VectorizerInstanceDown", "6m"),
        ),
    ),
    "VectorizerNoPrimary": (
        case(
            role("vz-0", "fenced") + role("vz-1", "replica"),
            fired("VectorizerNoPrimary", "3m", labels("critical")),
        ),
        case(healthy_roles(), fired("VectorizerNoPrimary", "3m")),
    ),
    "VectorizerMultiplePrimaries": (
        case(
            role("vz-0", "primary") + role("vz-1", "primary"),
            fired("VectorizerMultiplePrimaries", "2m", labels("critical")),
        ),
        case(healthy_roles(), fired("VectorizerMultiplePrimaries", "2m")),
    ),
    "VectorizerReplicationLagHigh": (
        case(
            [
                *healthy_roles(),
                series("vectorizer_replication_lag_ms", "60000x10", pod="vz-1"),
                series("vectorizer_replication_lag_ms", "10x10", pod="vz-2"),
            ],
            fired("VectorizerReplicationLagHigh", "6m", pod_labels("warning", "vz-1")),
        ),
        case(
            [
                *healthy_roles(),
                # On the primary the lag is its slowest replica's: not alerted twice.
                series("vectorizer_replication_lag_ms", "60000x10", pod="vz-0"),
                series("vectorizer_replication_lag_ms", "100x10", pod="vz-1"),
            ],
            fired("VectorizerReplicationLagHigh", "6m"),
        ),
    ),
    "VectorizerReplicaDisconnected": (
        case(
            [
                *healthy_roles(),
                series("vectorizer_replication_connected_replicas", "1x10", pod="vz-0"),
            ],
            fired("VectorizerReplicaDisconnected", "6m", pod_labels("warning", "vz-0")),
        ),
        case(
            [
                *healthy_roles(),
                series("vectorizer_replication_connected_replicas", "2x10", pod="vz-0"),
            ],
            fired("VectorizerReplicaDisconnected", "6m"),
        ),
    ),
    "VectorizerErrorRateHigh": (
        case(
            requests(100, "internal_error", 10),
            fired("VectorizerErrorRateHigh", "12m", labels("warning")),
        ),
        # Client errors (4xx) are the callers' business, however many there are.
        case(requests(100, "collection_not_found", 50), fired("VectorizerErrorRateHigh", "12m")),
    ),
    "VectorizerSearchLatencyHigh": (
        case(
            search_buckets(fast=10, slow=10),
            fired(
                "VectorizerSearchLatencyHigh",
                "16m",
                labels("warning", namespace="db", pod="vz-0"),
            ),
        ),
        case(search_buckets(fast=1000, slow=1), fired("VectorizerSearchLatencyHigh", "16m")),
    ),
    "VectorizerWalSizeHigh": (
        case(
            [series("vectorizer_wal_size_bytes", "2000000000x20", pod="vz-0")],
            fired("VectorizerWalSizeHigh", "16m", pod_labels("warning", "vz-0")),
        ),
        case(
            [series("vectorizer_wal_size_bytes", "1000000x20", pod="vz-0")],
            fired("VectorizerWalSizeHigh", "16m"),
        ),
    ),
    "VectorizerSnapshotTooOld": (
        case(
            [
                series("vectorizer_snapshot_age_seconds", "4000+60x20", pod="vz-0"),
                series("vectorizer_wal_sequence", "0+5x20", pod="vz-0"),
            ],
            fired("VectorizerSnapshotTooOld", "11m", pod_labels("warning", "vz-0")),
        ),
        # An idle node takes no snapshot (nothing new to save): its age grows harmlessly.
        case(
            [
                series("vectorizer_snapshot_age_seconds", "4000+60x20", pod="vz-0"),
                series("vectorizer_wal_sequence", "42x20", pod="vz-0"),
            ],
            fired("VectorizerSnapshotTooOld", "11m"),
        ),
    ),
    "VectorizerDiskNearReserve": (
        # 100 MiB free of an 80 MiB reserve: below 1.5 times it, still above it.
        case(
            disk("vz-0", free_mib=100, reserve_mib=80) + disk("vz-1", 500, 80),
            fired("VectorizerDiskNearReserve", "11m", pod_labels("warning", "vz-0")),
        ),
        # Plenty of room; and with no reserve (0) a full volume is not "near" it.
        case(
            disk("vz-0", free_mib=500, reserve_mib=80) + disk("vz-1", 0, 0),
            fired("VectorizerDiskNearReserve", "11m"),
        ),
    ),
    "VectorizerMemoryNearHighWater": (
        # 950 MiB of a 1000 MiB high-water mark: above 90% of it.
        case(
            memory("vz-0", anonymous_mib=950, high_water_mib=1000) + memory("vz-1", 500, 1000),
            fired("VectorizerMemoryNearHighWater", "11m", pod_labels("warning", "vz-0")),
        ),
        # Well below the mark; and with the guard off (0) there is no mark to near.
        case(
            memory("vz-0", anonymous_mib=500, high_water_mib=1000) + memory("vz-1", 950, 0),
            fired("VectorizerMemoryNearHighWater", "11m"),
        ),
    ),
    "VectorizerWritesRefused": (
        # One refusal at 2m: alerted at once, and resolved 5 minutes after the last one.
        case(
            [
                series("vectorizer_api_errors_total", "0 0 1x12", pod="vz-0", code=code)
                for code in ("insufficient_memory", "insufficient_storage")
            ],
            fired(
                "VectorizerWritesRefused",
                "3m",
                refused("insufficient_memory"),
                refused("insufficient_storage"),
            ),
            fired("VectorizerWritesRefused", "10m"),
        ),
        # Refusals long ago, and other errors now, are not refusals now.
        case(
            [
                series(
                    "vectorizer_api_errors_total", "7x12", pod="vz-0", code="insufficient_memory"
                ),
                series("vectorizer_api_errors_total", "0+5x12", pod="vz-0", code="internal_error"),
            ],
            fired("VectorizerWritesRefused", "10m"),
        ),
    ),
}


@pytest.fixture(scope="module")
def promtool() -> str:
    return debian_tool("promtool", "prometheus")


def the_cluster() -> Cluster:
    return make_cluster(instances=3)


def write_rules(path: Path, groups: list[Json]) -> None:
    path.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))


def without_annotations(groups: list[Json]) -> list[Json]:
    """The same rules, annotations left out: promtool would otherwise compare every
    rendered annotation; their templates are checked by ``promtool check rules``."""
    out = copy.deepcopy(groups)
    for group in out:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    return out


def run(promtool: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


def test_every_alert_has_cases_and_a_runbook() -> None:
    names = [a.name for a in alerts(the_cluster())]
    assert sorted(names) == sorted(CASES)
    for name in names:
        assert (RUNBOOKS / f"{name}.md").is_file(), f"docs/runbooks/{name}.md is missing"


def test_rules_pass_promtool_check(promtool: str, tmp_path: Path) -> None:
    write_rules(tmp_path / "rules.yaml", rule_groups(the_cluster()))
    result = run(promtool, "check", "rules", "rules.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(CASES)} rules found" in result.stdout


@pytest.mark.parametrize("outcome", ["fires", "quiet"])
@pytest.mark.parametrize("alert", sorted(CASES))
def test_alert(promtool: str, tmp_path: Path, alert: str, outcome: str) -> None:
    write_rules(tmp_path / "rules.yaml", without_annotations(rule_groups(the_cluster())))
    test = CASES[alert][0 if outcome == "fires" else 1]
    tests = {"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": [test]}
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(tests, sort_keys=False))
    result = run(promtool, "test", "rules", "tests.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_annotations_render(promtool: str, tmp_path: Path) -> None:
    """One alert end to end, annotations included: the templates expand as intended."""
    write_rules(tmp_path / "rules.yaml", rule_groups(the_cluster()))
    alert = {
        "exp_labels": pod_labels("warning", "vz-0"),
        "exp_annotations": {
            "summary": "Write-ahead log of vz-0 in db/vz is 1.863GiB",
            "description": "The log has retained more than 1073741824 bytes for 15 minutes: "
            "snapshots are not truncating it, and the volume may fill up.",
            "runbook_url": "https://github.com/vectorizer/vectorizer/blob/main/docs/runbooks/"
            "VectorizerWalSizeHigh.md",
        },
    }
    test = case(
        [series("vectorizer_wal_size_bytes", "2000000000x20", pod="vz-0")],
        {"eval_time": "16m", "alertname": "VectorizerWalSizeHigh", "exp_alerts": [alert]},
    )
    tests = {"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": [test]}
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(tests, sort_keys=False))
    result = run(promtool, "test", "rules", "tests.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_thresholds_come_from_the_spec(promtool: str, tmp_path: Path) -> None:
    """A lower WAL threshold makes the otherwise quiet case fire."""
    cluster = make_cluster(instances=3, monitoring={"thresholds": {"walSizeBytes": 1000}})
    write_rules(tmp_path / "rules.yaml", without_annotations(rule_groups(cluster)))
    test = case(
        [series("vectorizer_wal_size_bytes", "1000000x20", pod="vz-0")],
        fired("VectorizerWalSizeHigh", "16m", pod_labels("warning", "vz-0")),
    )
    tests = {"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": [test]}
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(tests, sort_keys=False))
    result = run(promtool, "test", "rules", "tests.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
