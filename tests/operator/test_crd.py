"""The CRD is generated from the model; the committed copies and the samples agree with it."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.operator.fakes import Sim
from vectorizer import settings as dataplane_settings
from vectorizer_operator import chart_values, crd, model, naming, settings
from vectorizer_operator.model import parse_cluster
from vectorizer_operator.schema import SpecError

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = sorted((ROOT / "samples").glob("*.yaml"))


def schema() -> dict[str, Any]:
    return crd.build()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


@pytest.mark.parametrize("path", crd.OUTPUTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_committed_crd_is_the_generated_one(path: Path) -> None:
    assert path.read_text() == crd.render(), (
        f"{path} is stale: run `python -m vectorizer_operator.crd --write`"
    )


def test_check_mode_reports_freshness(capsys: pytest.CaptureFixture[str]) -> None:
    assert crd.main(["--check"]) == 0
    assert crd.main([]) == 0
    assert capsys.readouterr().out == crd.render()


def test_check_mode_fails_on_a_stale_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stale = tmp_path / "crd.yaml"
    stale.write_text("old")
    values = tmp_path / "values.schema.json"
    monkeypatch.setattr(crd, "OUTPUTS", (stale,))
    monkeypatch.setattr(crd, "VALUES_SCHEMA", values)
    assert crd.main(["--check"]) == 1
    err = capsys.readouterr().err
    assert f"stale: {stale}" in err and f"stale: {values}" in err
    assert crd.main(["--write"]) == 0 and stale.read_text() == crd.render()
    assert values.read_text() == chart_values.render()
    assert crd.main(["--check"]) == 0


def test_the_chart_refuses_the_settings_the_operator_refuses() -> None:
    """values.schema.json is generated (committed fresh) and holds the operator's own
    choices and bounds for the values the chart passes on to it."""
    assert crd.VALUES_SCHEMA.read_text() == chart_values.render(), (
        "values.schema.json is stale: run `python -m vectorizer_operator.crd --write`"
    )
    values = yaml.safe_load((crd.VALUES_SCHEMA.parent / "values.yaml").read_text())
    schema = json.loads(crd.VALUES_SCHEMA.read_text())
    jsonschema.validate(values, schema)
    for path, setting, value in [
        (("logLevel",), "log_level", "verbose"),
        (("logFormat",), "log_format", "xml"),
        (("resyncSeconds",), "resync_s", 0.1),
        (("maxCatchupLag",), "max_catchup_lag", -1),
        (("leaderElection", "leaseDurationSeconds"), "lease_duration_s", 0.5),
    ]:
        with pytest.raises(ValueError):  # the operator refuses it at start-up
            settings.convert(setting, str(value))
        bad = json.loads(json.dumps(values))
        at = bad
        for key in path[:-1]:
            at = at[key]
        at[path[-1]] = value
        with pytest.raises(jsonschema.ValidationError):  # and so does Helm
            jsonschema.validate(bad, schema)


def test_crd_identity() -> None:
    doc = crd.build()
    spec = doc["spec"]
    assert doc["metadata"]["name"] == "vectorizerclusters.vectorizer.io"
    assert spec["group"] == "vectorizer.io" and spec["scope"] == "Namespaced"
    assert spec["names"]["kind"] == "VectorizerCluster"
    assert spec["names"]["shortNames"] == ["vzc"]
    version = spec["versions"][0]
    assert version["name"] == "v1alpha1" and version["served"] and version["storage"]
    assert version["subresources"]["status"] == {}
    assert version["subresources"]["scale"] == {
        "specReplicasPath": ".spec.instances",
        "statusReplicasPath": ".status.instances",
        "labelSelectorPath": ".status.selector",
    }
    columns = {c["name"]: c["jsonPath"] for c in version["additionalPrinterColumns"]}
    assert columns["Phase"] == ".status.phase"
    assert columns["Primary"] == ".status.currentPrimary"
    assert columns["Ready"] == ".status.readyInstances"
    assert columns["Age"] == ".metadata.creationTimestamp"


def _walk(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    if isinstance(node, dict):
        out.append((path, node))
        for key in ("properties",):
            for name, sub in (node.get(key) or {}).items():
                out += _walk(sub, f"{path}.{name}")
        if isinstance(node.get("items"), dict):
            out += _walk(node["items"], f"{path}[]")
        if isinstance(node.get("additionalProperties"), dict):
            out += _walk(node["additionalProperties"], f"{path}{{}}")
    return out


def test_schema_is_structural() -> None:
    """Every node has a type (or is int-or-string); properties and additionalProperties
    never meet; every default is valid against its own schema."""
    for path, node in _walk(schema()):
        assert "type" in node or node.get("x-kubernetes-int-or-string"), path
        assert not ("properties" in node and "additionalProperties" in node), path
        if "default" in node:
            jsonschema.validate(node["default"], _plain(node))


def test_status_fields_are_in_the_schema() -> None:
    status_props = schema()["properties"]["status"]["properties"]
    names = {
        "phase",
        "phaseReason",
        "conditions",
        "observedGeneration",
        "instances",
        "readyInstances",
        "currentPrimary",
        "targetPrimary",
        "epoch",
        "instancesStatus",
        "selector",
    }
    assert names <= set(status_props)


def test_config_schema_follows_the_data_plane_settings() -> None:
    config = schema()["properties"]["spec"]["properties"]["config"]["properties"]
    assert set(config) == set(model.configurable_settings())
    assert config["hnsw_m"]["type"] == "integer"
    assert config["snapshot_on_shutdown"]["type"] == "boolean"


def test_config_bounds_are_the_data_plane_s_own() -> None:
    """Every range the node checks of a setting in spec.config is in the CRD, so that
    `kubectl apply` refuses what the operator would; a limit that 0 turns off refuses,
    by a CEL rule, what is above 0 but below its least value (a rate of 1e-6 passed the
    CRD, and only the operator refused the resource after it was stored)."""
    config = schema()["properties"]["spec"]["properties"]["config"]["properties"]
    ranged = set(dataplane_settings.RANGES) & set(config)  # (port etc.: the operator's)
    assert "rate_limit_rps" in ranged and len(ranged) > 20, ranged
    for name in ranged:
        lo, hi = dataplane_settings.RANGES[name]
        assert (config[name]["minimum"], config[name]["maximum"]) == (lo, hi), name
    for name, least in dataplane_settings.OFF_OR_AT_LEAST.items():
        (rule,) = config[name]["x-kubernetes-validations"]
        assert rule["rule"] == f"self == 0.0 || self >= {least!r}", rule
        with pytest.raises(SpecError, match=f"config.{name}"):
            parse_cluster({"metadata": {"name": "c"}, "spec": {"config": {name: least / 10}}})


def test_name_rule_matches_naming() -> None:
    rules = schema()["x-kubernetes-validations"]
    assert str(naming.MAX_NAME_LENGTH) in rules[0]["rule"]


def _plain(node: Any) -> Any:
    """An OpenAPI schema as plain JSON Schema (drop the Kubernetes extensions)."""
    if isinstance(node, dict):
        return {k: _plain(v) for k, v in node.items() if not k.startswith("x-kubernetes")}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    return node


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_samples_validate_and_parse(path: Path) -> None:
    body = yaml.safe_load(path.read_text())
    jsonschema.validate(body, _plain(schema()))
    body["metadata"].setdefault("namespace", "default")
    cluster = parse_cluster(body)
    assert cluster.spec.instances >= 1


def test_there_are_a_minimal_and_a_production_sample() -> None:
    names = {p.name for p in SAMPLES}
    assert {"minimal.yaml", "production.yaml"} <= names
    prod = parse_cluster({**yaml.safe_load((ROOT / "samples" / "production.yaml").read_text())})
    assert prod.spec.replication.mode == "sync"
    assert prod.spec.affinity.pod_anti_affinity_type == "required"


def test_status_we_write_validates_against_the_schema() -> None:
    async def run() -> dict[str, Any]:
        sim = Sim(instances=3)
        await sim.settle()
        return sim.status

    status = asyncio.run(run())
    jsonschema.validate(status, _plain(schema()["properties"]["status"]))
