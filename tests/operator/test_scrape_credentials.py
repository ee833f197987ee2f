"""The PodMonitor of a cluster whose /metrics needs a credential (auth on, metrics_public
false): it presents an API key from a Secret, and a spec that gives none is refused."""

from __future__ import annotations

import pytest

from tests.operator.conftest import make_cluster
from tests.operator.fakes import Sim
from vectorizer_operator import naming
from vectorizer_operator.builders.monitoring import build_pod_monitor
from vectorizer_operator.model import SpecError

PRIVATE = {"metrics_public": False}
KEY = {"name": "prometheus-key", "key": "token"}


def endpoint(**spec: object) -> dict[str, object]:
    pm = build_pod_monitor(make_cluster(instances=3, **spec))
    assert pm is not None
    (ep,) = pm["spec"]["podMetricsEndpoints"]
    return ep  # type: ignore[no-any-return]


def test_the_pod_monitor_presents_the_key_as_a_bearer_token() -> None:
    ep = endpoint(
        auth={"enabled": True}, config=PRIVATE, monitoring={"podMonitor": {"apiKeySecret": KEY}}
    )
    assert ep["authorization"] == {
        "type": "Bearer",
        "credentials": {"name": "prometheus-key", "key": "token"},
    }
    assert ep["scheme"] == "https"  # (beside TLS, not instead of it)
    default_key = endpoint(
        config=PRIVATE, monitoring={"podMonitor": {"apiKeySecret": {"name": "k"}}}
    )
    assert default_key["authorization"]["credentials"] == {"name": "k", "key": "api-key"}  # type: ignore[index]


def test_public_metrics_need_no_credential() -> None:
    assert "authorization" not in endpoint()
    assert "authorization" not in endpoint(auth={"enabled": False}, config=PRIVATE)


def test_private_metrics_without_a_key_are_refused_naming_the_field() -> None:
    """Accepted before: every scrape of a healthy pod was a 401, up == 0, and
    VectorizerInstanceDown fired for every instance."""
    with pytest.raises(SpecError, match=r"^spec\.monitoring\.podMonitor\.apiKeySecret: "):
        make_cluster(instances=3, auth={"enabled": True}, config=PRIVATE)
    with pytest.raises(SpecError) as err:
        make_cluster(instances=3, config=PRIVATE)  # (auth is on by default)
    assert str(err.value).startswith("spec.monitoring.podMonitor.apiKeySecret: required")
    assert "metrics_public" in str(err.value)
    # Nothing scrapes, nothing is refused: accepted.
    make_cluster(config=PRIVATE, monitoring={"podMonitor": {"enabled": False}})
    make_cluster(config=PRIVATE, monitoring={"enabled": False})
    make_cluster(config=PRIVATE, auth={"enabled": False})


async def test_the_cluster_reports_the_refusal_as_failed() -> None:
    sim = Sim(instances=1)
    await sim.settle()
    sim.edit_spec(config=PRIVATE)
    await sim.step()
    assert sim.status["phase"] == "Failed"
    assert sim.status["phaseReason"].startswith("spec.monitoring.podMonitor.apiKeySecret:")
    sim.edit_spec(monitoring={"podMonitor": {"apiKeySecret": KEY}})
    await sim.settle()
    assert sim.status["phase"] == "Healthy"
    pm = sim.kube.find(naming.MONITORING_API_VERSION, "PodMonitor", "vz")
    assert pm is not None
    (ep,) = pm["spec"]["podMetricsEndpoints"]
    assert ep["authorization"]["credentials"] == KEY
