"""The declarative model machinery: one declaration gives schema, parser and dump."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import pytest

from vectorizer_operator.schema import Rule, SpecError, camel, dump, openapi, parse, prop


@dataclass(frozen=True)
class Inner:
    """An inner object."""

    size: int = prop(3, doc="A size.", minimum=1, maximum=9)


@dataclass(frozen=True)
class Outer:
    RULES: ClassVar[tuple[Rule, ...]] = (Rule("self.count >= 0", "count must not be negative"),)

    name: str = prop(doc="Required.", pattern="^[a-z]+$")
    count: int = prop(1, doc="A count.", json="howMany")
    kind: str = prop("a", doc="An enum.", enum=("a", "b"))
    inner: Inner = prop(doc="Nested.", factory=Inner)
    items: tuple[Inner, ...] = prop(doc="A list.", factory=tuple, list_map_keys=("size",))
    labels: dict[str, str] = prop(doc="A map.", factory=dict)
    note: str | None = prop(None, doc="Optional.")
    ratio: float = prop(0.5, doc="A number.")

    def check(self, path: str) -> None:
        if self.count > 100:
            raise SpecError(f"{path}.howMany: too many")


def test_camel() -> None:
    assert camel("pod_disruption_budget") == "podDisruptionBudget"
    assert camel("instances") == "instances"


def test_openapi_has_types_defaults_bounds_and_rules() -> None:
    s = openapi(Outer)
    assert s["type"] == "object"
    assert s["required"] == ["name"]
    props = s["properties"]
    assert props["howMany"] == {"description": "A count.", "type": "integer", "default": 1}
    assert props["kind"]["enum"] == ["a", "b"]
    assert props["inner"]["default"] == {}
    assert props["inner"]["description"] == "Nested."
    assert props["inner"]["properties"]["size"]["maximum"] == 9
    assert props["items"]["type"] == "array"
    assert props["items"]["x-kubernetes-list-type"] == "map"
    assert props["labels"]["additionalProperties"] == {"type": "string"}
    assert props["note"]["type"] == "string" and "default" not in props["note"]
    assert props["ratio"]["type"] == "number"
    assert s["x-kubernetes-validations"] == [
        {"rule": "self.count >= 0", "message": "count must not be negative"}
    ]


def test_parse_applies_defaults_and_checks() -> None:
    o = parse(Outer, {"name": "x", "items": [{"size": 2}], "ratio": 1}, "spec")
    assert o == Outer(name="x", items=(Inner(2),), ratio=1.0)
    assert dump(o) == {
        "name": "x",
        "howMany": 1,
        "kind": "a",
        "inner": {"size": 3},
        "items": [{"size": 2}],
        "labels": {},
        "ratio": 1.0,
    }


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({}, "spec.name: is required"),
        ({"name": "X"}, "spec.name: 'X' does not match"),
        ({"name": "x", "kind": "c"}, "spec.kind: must be one of a, b"),
        ({"name": "x", "inner": {"size": 10}}, "spec.inner.size: must be at most 9"),
        ({"name": "x", "items": [{"size": 0}]}, "spec.items[0].size: must be at least 1"),
        ({"name": "x", "labels": {"a": 1}}, "spec.labels.a: must be a string"),
        ({"name": "x", "note": 5}, "spec.note: must be a string"),
        ({"name": "x", "howMany": 101}, "spec.howMany: too many"),
        ({"name": "x", "extra": 1}, "spec.extra: unknown field"),
        ({"name": "x", "items": {}}, "spec.items: must be a list"),
        ([], "spec: must be an object"),
    ],
)
def test_parse_errors_name_the_path(raw: object, message: str) -> None:
    with pytest.raises(SpecError) as err:
        parse(Outer, raw, "spec")
    assert str(err.value).startswith(message)


def test_lenient_parse_ignores_unknown_fields() -> None:
    assert parse(Outer, {"name": "x", "extra": 1}, "status", strict=False).name == "x"


def test_null_means_default() -> None:
    assert parse(Outer, {"name": "x", "howMany": None}, "spec").count == 1
