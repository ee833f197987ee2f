"""Parsing and validating the spec: defaults, bounds, enums, and spec.config."""

from __future__ import annotations

from typing import Any

import pytest

from tests.operator.conftest import make_cluster
from tests.operator.fakes import cluster_body
from vectorizer import settings as dataplane_settings
from vectorizer_operator import model
from vectorizer_operator.model import SpecError, parse_cluster


def test_defaults_fill_an_empty_spec() -> None:
    c = make_cluster()
    s = c.spec
    assert s.instances == 1
    assert s.image is None
    assert s.image_pull_policy == "IfNotPresent"
    assert s.storage.size == "1Gi"
    assert s.storage.pvc_retention_policy.when_deleted == "Retain"
    assert s.storage.pvc_retention_policy.when_scaled == "Delete"
    assert s.replication.mode == "async"
    assert s.replication.effective_sync_replicas() == 0
    assert s.affinity.enable_pod_anti_affinity is True
    assert s.pod_disruption_budget.enabled is True
    assert s.services.type == "ClusterIP"
    assert s.primary_update_method == "restart"
    assert c.status.current_primary is None


def test_metadata_and_status_are_read() -> None:
    c = make_cluster(
        status={"currentPrimary": "vz-1", "targetPrimary": "vz-1", "epoch": 3, "phase": "Healthy"}
    )
    assert (c.name, c.namespace, c.uid, c.generation) == ("vz", "db", "uid-vz", 1)
    assert (c.status.current_primary, c.status.epoch) == ("vz-1", 3)
    assert c.owner_reference()["controller"] is True


@pytest.mark.parametrize(
    ("spec", "path"),
    [
        ({"instances": 0}, "spec.instances"),
        ({"instances": 33}, "spec.instances"),
        ({"instances": "3"}, "spec.instances"),
        ({"instances": True}, "spec.instances"),
        ({"imagePullPolicy": "Sometimes"}, "spec.imagePullPolicy"),
        ({"storage": {"size": "ten gigs"}}, "spec.storage.size"),
        (
            {"storage": {"pvcRetentionPolicy": {"whenScaled": "Keep"}}},
            "spec.storage.pvcRetentionPolicy.whenScaled",
        ),
        ({"replication": {"mode": "semi"}}, "spec.replication.mode"),
        (
            {"instances": 2, "replication": {"mode": "sync"}, "config": {"wal_fsync": "never"}},
            "spec.config.wal_fsync",
        ),
        (
            {"instances": 2, "replication": {"mode": "sync", "syncReplicas": 2}},
            "spec.replication.syncReplicas",
        ),
        ({"services": {"type": "ExternalName"}}, "spec.services.type"),
        ({"resources": {"limits": {"memory": "lots"}}}, "spec.resources.limits.memory"),
        (
            {"affinity": {"tolerations": [{"effect": "Sometimes"}]}},
            "spec.affinity.tolerations[0].effect",
        ),
        ({"podDisruptionBudget": {"maxUnavailable": 0}}, "spec.podDisruptionBudget.maxUnavailable"),
        ({"bogus": 1}, "spec.bogus"),
        ({"config": {"hnsw_m": "sixteen"}}, "spec.config.hnsw_m"),
        ({"config": {"no_such_setting": 1}}, "spec.config.no_such_setting"),
        ({"config": {"port": 80}}, "spec.config.port"),
        ({"config": {"data_dir": "/x"}}, "spec.config.data_dir"),
        ({"config": {"role": "primary"}}, "spec.config.role"),
        ({"config": {"wal_fsync": "sometimes"}}, "spec.config.wal_fsync"),
        ({"config": {"snapshot_on_shutdown": 1}}, "spec.config.snapshot_on_shutdown"),
        ({"config": {"hnsw_m": 0}}, "spec.config.hnsw_m"),
        ({"config": {"some_future_secret": "x"}}, "spec.config.some_future_secret"),
        ({"services": {"annotations": {"bad key!": "x"}}}, "spec.services.annotations['bad key!']"),
        ({"services": {"annotations": {"/x": "y"}}}, "spec.services.annotations['/x']"),
        (
            {"services": {"annotations": {"Bad_Prefix/x": "y"}}},
            "spec.services.annotations['Bad_Prefix/x']",
        ),
        ({"services": {"annotations": {"a": 1}}}, "spec.services.annotations['a']"),
        ({"affinity": {"nodeSelector": {"zone": "a b"}}}, "spec.affinity.nodeSelector['zone']"),
        (
            {"monitoring": {"podMonitor": {"labels": {"-x": "y"}}}},
            "spec.monitoring.podMonitor.labels['-x']",
        ),
        (
            {"monitoring": {"prometheusRule": {"labels": {"x" * 64: "y"}}}},
            f"spec.monitoring.prometheusRule.labels['{'x' * 64}']",
        ),
    ],
)
def test_invalid_specs_name_the_field(spec: dict[str, Any], path: str) -> None:
    with pytest.raises(SpecError) as err:
        parse_cluster(cluster_body(**spec))
    assert str(err.value).startswith(path + ":"), str(err.value)


def test_valid_label_and_annotation_keys_are_accepted() -> None:
    annotations = {
        "service.beta.kubernetes.io/aws-load-balancer-internal": "true",
        "example.com/Any_Value.1": "any value at all: ok!",
        "plain": "",
    }
    c = make_cluster(
        services={"annotations": annotations},
        affinity={"nodeSelector": {"topology.kubernetes.io/zone": "eu-west-1a", "gpu": ""}},
    )
    assert c.spec.services.annotations == annotations


def test_sync_mode_needs_fewer_sync_replicas_than_instances() -> None:
    c = make_cluster(instances=3, replication={"mode": "sync", "syncReplicas": 2})
    assert c.spec.replication.effective_sync_replicas() == 2


def test_name_length_is_bounded() -> None:
    with pytest.raises(SpecError, match=r"^metadata\.name:"):
        parse_cluster(cluster_body("a" * 51))


def test_quantities_accept_numbers_and_strings() -> None:
    c = make_cluster(
        resources={"requests": {"cpu": 1, "memory": "512Mi"}, "limits": {"cpu": "1500m"}}
    )
    assert c.spec.resources.requests == {"cpu": "1", "memory": "512Mi"}


def test_config_accepts_every_configurable_data_plane_setting() -> None:
    values = {"integer": 7, "number": 1.5, "boolean": False, "string": "x"}
    known = model.configurable_settings()
    assert {"hnsw_m", "wal_fsync", "snapshot_interval_s", "log_level"} <= set(known)
    assert not model.RESERVED_SETTINGS & set(known)
    assert not any(model.is_secret_setting(name) for name in known)
    sample = {
        "hnsw_m": 32,
        "wal_fsync": "never",
        "snapshot_interval_s": 60,
        "snapshot_on_shutdown": False,
    }
    c = make_cluster(config=sample)
    assert c.spec.config == sample
    assert all(kind in values for kind in known.values())


def test_config_names_are_the_data_plane_settings() -> None:
    """One source of truth: every data-plane setting is configurable or reserved."""
    names = {f.name for f in dataplane_settings.setting_fields()}
    configurable = set(model.configurable_settings())
    assert configurable <= names
    secrets = {n for n in names if model.is_secret_setting(n) or model.is_security_setting(n)}
    assert names - configurable <= model.RESERVED_SETTINGS | secrets | {
        f.name
        for f in dataplane_settings.setting_fields()
        if str(f.type) not in ("int", "float", "bool", "str")
    }


def test_config_env_uses_the_data_plane_prefix() -> None:
    env = model.config_env({"hnsw_m": 32, "snapshot_on_shutdown": False, "wal_fsync": "always"})
    assert env == {
        "VECTORIZER_HNSW_M": "32",
        "VECTORIZER_SNAPSHOT_ON_SHUTDOWN": "false",
        "VECTORIZER_WAL_FSYNC": "always",
    }
    # ... and the data plane reads them back to the same values.
    loaded = dataplane_settings.load({}, env=env)
    assert (loaded.hnsw_m, loaded.snapshot_on_shutdown, loaded.wal_fsync) == (32, False, "always")


def test_a_damaged_status_keeps_the_replication_handshake() -> None:
    status = model.parse_status({"currentPrimary": "vz-2", "epoch": 4, "instances": "three"})
    assert (status.current_primary, status.epoch) == ("vz-2", 4)
    assert model.parse_status({"futureField": 1, "epoch": 2}).epoch == 2
    assert model.parse_status(None) == model.ClusterStatus()


def test_cluster_stub_reads_an_invalid_resource() -> None:
    stub = model.cluster_stub(cluster_body(instances=0))
    assert stub.name == "vz" and stub.spec == model.ClusterSpec()
