"""Formula expressions (Qdrant's score boosting): every operator worked by hand, the
defaults, the errors Qdrant reports and where, edge values; then random formulas held to
qdrant-client's local mode (its ``evaluate_expression``)."""

from __future__ import annotations

import math
import random
from typing import Any

import msgspec
import pytest
from qdrant_client import models as qm
from qdrant_client.hybrid import formula as local
from qdrant_client.local.datetime_utils import parse as local_datetime

from vectorizer.engine import geo
from vectorizer.engine.formula import MAX_DEPTH, Formula, parse
from vectorizer.errors import ValidationError
from vectorizer.qdrant import models, schemas

F = "query.formula"
PAYLOAD: dict[str, Any] = {
    "n": 4,
    "x": 2.5,
    "one": [7],
    "two": [1, 2],
    "none": None,
    "empty": [],
    "s": "text",
    "flag": True,
    "o": {"p": {"q": 3}},
    "arr": [{"v": 1.5}, {"v": 2}],
    "deep": [[1, 2], [3]],
    "pairs": [[5]],
    "loc": {"lon": 2.35, "lat": 48.86},
    "when": "2024-03-01T12:00:00+02:00",
    "tag": "h1",
}


def _score(
    spec: Any,
    defaults: Any = None,
    payload: dict[str, Any] | None = None,
    scores: list[float | None] | None = None,
    pid: int = 1,
) -> float:
    f = parse(spec, defaults, F)
    return f.score(
        pid, PAYLOAD if payload is None else payload, [0.5, None] if scores is None else scores
    )


def _error(
    spec: Any, defaults: Any = None, payload: dict[str, Any] | None = None
) -> ValidationError:
    with pytest.raises(ValidationError) as err:
        _score(spec, defaults, payload)
    return err.value


def _f32(x: float) -> float:
    import struct

    return float(struct.unpack("<f", struct.pack("<f", x))[0])


# ---- constants and variables --------------------------------------------------------------


def test_constants_are_f32_as_qdrant_reads_them() -> None:
    assert _score(3) == 3.0
    assert _score(0.1) == _f32(0.1) != 0.1
    assert _score(-2.5) == -2.5
    assert _error(1e39).field == F  # beyond f32: refused (Qdrant reads infinity)
    assert _error(True).field == F


def test_scores_by_prefetch_with_their_defaults() -> None:
    scores: list[float | None] = [0.5, None, 0.25]
    assert _score("$score", scores=scores) == 0.5
    assert _score("$score[0]", scores=scores) == 0.5
    assert _score("$score[2]", scores=scores) == 0.25
    assert _score("$score[1]", scores=scores) == 0.0  # not found there, no default: 0
    assert _score("$score[9]", scores=scores) == 0.0  # no such prefetch
    assert _score("$score[1]", {"$score[1]": 3}, scores=scores) == 3.0
    assert _score("$score[9]", {"$score[9]": -1.5}, scores=scores) == -1.5
    assert _score("$score[1]", {"$score[1]": "x"}, scores=scores) == 0.0  # not a number: 0
    assert _score("$score[1]", {"$score[1]": True}, scores=scores) == 0.0
    assert _score("$score[2]", {"$score[2]": 9}, scores=scores) == 0.25  # found: no default
    # `$score` and `$score[0]` are one variable: the last default given counts
    assert _score("$score[0]", {"$score": 1, "$score[0]": 2}, scores=[None]) == 2.0
    assert _score("$score", {"$score[0]": 2, "$score": 1}, scores=[None]) == 1.0


def test_payload_values_and_their_defaults() -> None:
    assert _score("n") == 4.0
    assert _score("x") == 2.5
    assert _score("one") == 7.0  # an array of one number is that number
    assert _score("o.p.q") == 3.0
    assert _score("arr[0].v") == 1.5
    assert _score("arr[1].v") == 2.0
    assert _score("deep[1]") == 3.0  # [3], flattened
    assert _score("pairs[0]") == 5.0
    assert _score("missing", {"missing": 1.25}) == 1.25
    assert _score("empty", {"empty": 6}) == 6.0  # an empty array has no value
    assert _score("arr[5].v", {"arr[5].v": 2}) == 2.0
    assert _score("o.p.q", {"o.p.q": 100}) == 3.0  # the payload's value first
    assert _score("n", {"n": "ignored"}) == 4.0


@pytest.mark.parametrize(
    ("key", "defaults", "why"),
    [
        ("missing", None, "no value"),
        ("s", None, "not a number"),
        ("s", {"s": 1}, "not a number"),  # a value that is not a number: no default
        ("flag", None, "not a number"),
        ("none", {"none": 1}, "not a number"),  # a null is a value, and not a number
        ("two", None, "not a number"),  # two values: an array
        ("arr[].v", None, "not a number"),
        ("deep", None, "not a number"),  # flattened once: [1, 2], [3]
        # after [] not flattened (Qdrant's; the local mode flattens: 5)
        ("pairs[]", None, "not a number"),
        ("missing", {"missing": "1"}, "not a number"),
        ("missing", {"missing": [1]}, "not a number"),  # a default is taken as it is
        ("o", None, "not a number"),
    ],
)
def test_a_value_that_is_not_one_number_is_an_error(key: str, defaults: Any, why: str) -> None:
    err = _error({"sum": [1, key]}, defaults)
    assert err.field == f"{F}.sum[1]" and why in err.message and repr(key) in err.message
    assert "point 1" in err.message


def test_conditions_are_one_or_zero() -> None:
    f = parse({"sum": [{"key": "tag", "match": {"value": "h1"}}, {"has_id": [2]}]}, None, F)
    assert f.score(1, PAYLOAD, []) == 1.0
    assert f.score(2, PAYLOAD, []) == 2.0
    assert f.score(2, {"tag": "p"}, []) == 1.0
    assert f.conditions == ({"key": "tag", "match": {"value": "h1"}}, {"has_id": [2]})
    # the caller may decide them (as a collection does, with its indexes)
    assert f.score(1, {}, [], [lambda _pid, _p: True, lambda _pid, _p: True]) == 2.0
    nested = {"must": [{"key": "n", "range": {"gt": 3}}], "must_not": [{"is_empty": {"key": "s"}}]}
    assert _score(nested) == 1.0
    assert _score(nested, payload={"n": 4}) == 0.0


def test_conditions_are_put_in_canonical_form() -> None:
    f = parse({"has_id": ["A"]}, None, F, canonical=lambda c: {"has_id": [c["has_id"][0].lower()]})
    assert f.conditions == ({"has_id": ["a"]},)
    assert f.score("a", None, []) == 1.0


def test_the_qdrant_layer_canonicalises_the_ids_of_has_id_conditions() -> None:
    upper = "3F2504E0-4F89-11D3-9A0C-0305E82C3301"
    body = {"prefetch": {"query": [1.0]}, "query": {"formula": {"sum": [{"has_id": [upper]}]}}}
    search = models.query_request(msgspec.convert(body, schemas.QueryRequest), 100)
    assert search.formula is not None
    assert search.formula.conditions == ({"has_id": [upper.lower()]},)
    assert search.formula.score(upper.lower(), None, []) == 1.0


# ---- operators --------------------------------------------------------------------------


def test_arithmetic() -> None:
    assert _score({"sum": []}) == 0.0
    assert _score({"mult": []}) == 1.0
    assert _score({"sum": [1, "n", "$score"]}) == 5.5
    assert _score({"mult": [2, "n", "$score"]}) == 4.0
    assert _score({"neg": "n"}) == -4.0
    assert _score({"abs": {"neg": "x"}}) == 2.5
    assert _score({"div": {"left": "n", "right": 8}}) == 0.5
    assert _score({"div": {"left": "n", "right": 0, "by_zero_default": 3}}) == 3.0
    assert _score({"div": {"left": "n", "right": {"neg": 0}, "by_zero_default": 3}}) == 3.0
    assert _score({"div": {"left": 1, "right": 3, "by_zero_default": 9}}) == _f32(1 / 3)
    assert _score({"max": [1, "n", -3]}) == 4.0
    assert _score({"min": [1, "n", -3]}) == -3.0
    assert _score({"max": ["x"]}) == 2.5


def test_a_zero_factor_or_numerator_stops_the_evaluation() -> None:
    # what follows would fail ("missing" has no value), but is never evaluated
    assert _score({"mult": [1, 0, "missing"]}) == 0.0
    assert _score({"mult": [{"key": "tag", "match": {"value": "p"}}, {"sqrt": -1}]}) == 0.0
    assert _score({"div": {"left": 0, "right": "missing"}}) == 0.0
    assert _score({"div": {"left": 0, "right": 0}}) == 0.0
    assert _error({"mult": [1, "missing", 0]}).field == f"{F}.mult[1]"  # (in order)


def test_functions() -> None:
    assert _score({"sqrt": 16}) == 4.0
    assert _score({"sqrt": {"neg": 0}}) == 0.0
    assert _score({"pow": {"base": 2, "exponent": 10}}) == 1024.0
    assert _score({"pow": {"base": -2, "exponent": 3}}) == -8.0
    assert _score({"pow": {"base": 0, "exponent": 0}}) == 1.0
    assert _score({"pow": {"base": 4, "exponent": -0.5}}) == 0.5
    assert _score({"exp": 0}) == 1.0
    assert _score({"exp": -1000}) == 0.0
    assert _score({"log10": 1000}) == pytest.approx(3.0)
    assert _score({"ln": 1}) == 0.0
    assert _score({"ln": {"exp": 2}}) == pytest.approx(2.0)
    assert _score({"acosh": 1}) == 0.0
    assert _score({"acosh": 2}) == _f32(math.acosh(2))


@pytest.mark.parametrize(
    ("spec", "field", "says"),
    [
        ({"sqrt": -1}, "sqrt", "√-1"),
        ({"log10": 0}, "log10", "log10(0)"),
        ({"ln": -2}, "ln", "ln(-2)"),
        ({"acosh": 0.5}, "acosh", "acosh(0.5)"),
        ({"exp": 710}, "exp", "exp(710)"),
        ({"pow": {"base": -8, "exponent": 0.5}}, "pow", "-8^0.5"),
        ({"pow": {"base": 0, "exponent": -1}}, "pow", "0^-1"),
        ({"pow": {"base": 10, "exponent": 309}}, "pow", "10^309"),
        ({"div": {"left": 1, "right": 0}}, "div", "1/0 = inf"),
        ({"div": {"left": -1, "right": 0}}, "div", "-1/0 = -inf"),
        ({"div": {"left": {"mult": [1e30] * 10}, "right": 1e-30}}, "div", "= inf"),
        ({"mult": [1e30, 1e30]}, "", "as f32"),  # finite in f64, not in f32
        ({"sum": [3e38, 3e38]}, "", "as f32"),
        ({"max": [{"sum": [{"mult": [1e38] * 9}, {"neg": {"mult": [1e38] * 9}}]}]}, "", "-inf"),
    ],
)
def test_non_finite_results_are_errors(spec: Any, field: str, says: str) -> None:
    err = _error(spec)
    assert err.field == (f"{F}.{field}" if field else F), err.field
    assert says in err.message and "non-finite" in err.message, err.message


def test_max_and_min_skip_nans() -> None:
    nan = {"sum": [{"mult": [1e38] * 9}, {"neg": {"mult": [1e38] * 9}}]}  # inf - inf
    assert _score({"max": [nan, 2, nan]}) == 2.0
    assert _score({"min": [nan, 2, -1]}) == -1.0


def test_geo_distance() -> None:
    paris = {"lon": 2.35, "lat": 48.86}
    berlin = {"lon": 13.4, "lat": 52.52}
    want = _f32(geo.distance(13.4, 52.52, 2.35, 48.86))
    assert _score({"geo_distance": {"origin": berlin, "to": "loc"}}) == want
    assert 870_000 < want < 890_000
    assert _score({"geo_distance": {"origin": paris, "to": "loc"}}) == 0.0
    assert _score({"geo_distance": {"origin": berlin, "to": "nowhere"}}, {"nowhere": paris}) == want
    err = _error({"geo_distance": {"origin": berlin, "to": "n"}})
    assert err.field == f"{F}.geo_distance" and "geo point" in err.message
    assert "no value" in _error({"geo_distance": {"origin": berlin, "to": "nowhere"}}).message


def test_datetimes_are_seconds_since_the_epoch() -> None:
    assert _score({"datetime": "1970-01-02T00:00:00Z"}) == 86_400.0
    assert _score({"datetime": "1970-01-01T00:00:01.5"}) == 1.5  # (UTC without a zone)
    # as f64 they are exact to the microsecond; the final score is an f32
    noon = 1_709_287_200.0  # 2024-03-01T10:00:00Z
    diff = {"sum": [{"datetime_key": "when"}, {"neg": {"datetime": "2024-03-01T10:00:00Z"}}]}
    assert _score(diff) == 0.0
    assert _score({"datetime_key": "when"}) == _f32(noon)
    assert _score({"datetime_key": "later"}, {"later": "1970-01-01T01:00:00Z"}) == 3600.0
    assert _error({"datetime_key": "n"}).field == f"{F}.datetime_key"
    assert "no value" in _error({"datetime_key": "later"}).message


def test_decays() -> None:
    # at |x - target| == scale every decay gives the midpoint; at 0 it gives 1
    for kind in ("lin_decay", "exp_decay", "gauss_decay"):
        at_scale = {kind: {"x": "n", "target": 1, "scale": 3, "midpoint": 0.25}}
        assert _score(at_scale) == pytest.approx(0.25), kind
        assert _score({kind: {"x": "n", "target": "n"}}) == 1.0, kind
        assert _score({kind: {"x": -1}}) == pytest.approx(0.5), kind  # target 0, scale 1
    assert _score({"lin_decay": {"x": 10}}) == 0.0  # floored at 0
    assert _score({"lin_decay": {"x": 10, "midpoint": 1}}) == 1.0  # midpoint 1: no decay
    assert _score({"lin_decay": {"x": 0.5, "midpoint": 0}}) == 0.5
    assert _score({"exp_decay": {"x": 2}}) == pytest.approx(0.25)
    assert _score({"gauss_decay": {"x": 2}}) == pytest.approx(0.5**4)
    assert _score({"exp_decay": {"x": {"mult": [1e30] * 10}}}) == 0.0
    assert _score({"gauss_decay": {"x": {"mult": [1e20] * 10}}}) == 0.0  # (d^2 is infinite)
    # the midpoint is an f32, as Qdrant reads it: ln(0.3) differs from ln(f32(0.3))
    got = _score({"exp_decay": {"x": 1, "midpoint": 0.3}})
    assert got == _f32(math.exp(math.log(_f32(0.3))))


# ---- parsing ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "defaults", "field"),
    [
        (None, None, F),
        ([1], None, F),
        ({}, None, F),
        ("", None, F),
        ("a..b", None, F),
        ("$score[x]", None, F),
        ("$score[1][2]", None, F),
        ("$score.a", None, F),
        ("$other", None, F),
        ({"sum": 1}, None, f"{F}.sum"),
        ({"sum": [1, None]}, None, f"{F}.sum[1]"),
        ({"max": []}, None, f"{F}.max"),
        ({"min": []}, None, f"{F}.min"),
        ({"neg": 1, "abs": 1}, None, F),
        ({"neg": 1, "key": "a"}, None, F),
        ({"div": {"left": 1}}, None, f"{F}.div.right"),
        (
            {"div": {"left": 1, "right": 2, "by_zero_default": "x"}},
            None,
            f"{F}.div.by_zero_default",
        ),
        ({"div": [1, 2]}, None, f"{F}.div"),
        ({"pow": {"base": 1, "power": 2}}, None, f"{F}.pow.power"),
        ({"sqrt": {"sqrt": "$bad"}}, None, f"{F}.sqrt.sqrt"),
        ({"geo_distance": {"origin": {"lon": 0}, "to": "a"}}, None, f"{F}.geo_distance.origin"),
        ({"geo_distance": {"origin": {"lon": 0, "lat": 0}, "to": 1}}, None, f"{F}.geo_distance.to"),
        (
            {"geo_distance": {"origin": {"lon": 0, "lat": 0}, "to": "$score"}},
            None,
            f"{F}.geo_distance.to",
        ),
        ({"datetime": "2024-13-01"}, None, f"{F}.datetime"),
        ({"datetime": 5}, None, f"{F}.datetime"),
        ({"datetime_key": ""}, None, f"{F}.datetime_key"),
        ({"lin_decay": {"x": 1, "midpoint": -0.1}}, None, f"{F}.lin_decay.midpoint"),
        ({"exp_decay": {"x": 1, "midpoint": 0}}, None, f"{F}.exp_decay.midpoint"),
        ({"gauss_decay": {"x": 1, "midpoint": 0.99999999}}, None, f"{F}.gauss_decay.midpoint"),
        ({"exp_decay": {"x": 1, "scale": 1e-50}}, None, f"{F}.exp_decay.scale"),  # f32: 0
        ({"exp_decay": {"x": 1, "scale": -1}}, None, f"{F}.exp_decay.scale"),
        ({"exp_decay": {"target": 1}}, None, f"{F}.exp_decay.x"),
        ({"exp_decay": {"x": 1, "mid": 1}}, None, f"{F}.exp_decay.mid"),
        ({"key": "a"}, None, F),
        ({"key": "a", "match": {"value": []}}, None, f"{F}.match.value"),
        ({"must": [{"has_id": "x"}]}, None, f"{F}.must[0].has_id"),
        (
            {"sum": [{"nested": {"key": "a", "filter": {"must": [{"has_id": [1]}]}}}]},
            None,
            "has_id",
        ),
        ("$score", [1], "query.defaults"),
        ("$score", {"$x": 1}, "query.defaults.$x"),
        ("$score", {"": 1}, "query.defaults."),
        ("$score", {"a..b": 1}, "query.defaults.a..b"),
    ],
)
def test_bad_formulas_name_the_field(spec: Any, defaults: Any, field: str) -> None:
    with pytest.raises(ValidationError) as err:
        parse(spec, defaults, F)
    assert err.value.field is not None and field in err.value.field, err.value.field


def test_formulas_nest_at_most_so_deep() -> None:
    spec: Any = 1
    for _ in range(MAX_DEPTH - 1):
        spec = {"neg": spec}
    assert parse(spec, None, F).score(1, None, []) == (-1.0) ** (MAX_DEPTH - 1)
    with pytest.raises(ValidationError, match="nest"):
        parse({"neg": spec}, None, F)


def test_defaults_may_be_absent_or_empty() -> None:
    for defaults in (None, {}):
        assert parse("$score", defaults, F).score(1, None, [0.75]) == 0.75
    assert parse("$score", None, "prefetch[2].query.formula").score(1, None, []) == 0.0
    with pytest.raises(ValidationError) as err:
        parse("$score", {"$no": 1}, "prefetch[2].query.formula")
    assert err.value.field == "prefetch[2].query.defaults.$no"


# ---- held to the local mode ---------------------------------------------------------------

_LEAVES: list[Any] = [
    0,
    1,
    2,
    0.5,
    -1.5,
    3,
    "$score",
    "$score[1]",
    "$score[3]",
    "a",
    "b",
    "arr[0]",
    "o.v",
    {"key": "t", "match": {"value": "x"}},
    {"key": "a", "range": {"gt": 1}},
]


def _random_expression(rng: random.Random, depth: int) -> Any:
    if depth == 0 or rng.random() < 0.3:
        return rng.choice(_LEAVES)
    op = rng.choice(
        ["sum", "mult", "max", "min", "neg", "abs", "div", "sqrt", "pow", "exp", "log10", "ln"]
        + ["acosh", "lin_decay", "exp_decay", "gauss_decay"]
    )
    sub = lambda: _random_expression(rng, depth - 1)  # noqa: E731
    if op in ("sum", "mult", "max", "min"):
        return {op: [sub() for _ in range(rng.randint(1, 3))]}
    if op == "div":
        params = {"left": sub(), "right": sub()}
        if rng.random() < 0.5:
            params["by_zero_default"] = rng.choice([0, 2.5])
        return {"div": params}
    if op == "pow":
        return {"pow": {"base": sub(), "exponent": rng.choice([0, 1, 2, 0.5, -1, sub()])}}
    if op.endswith("decay"):
        params = {"x": sub()}
        if rng.random() < 0.5:
            params["target"] = sub()
        if rng.random() < 0.5:
            params["scale"] = rng.choice([0.5, 2, 10])
        if rng.random() < 0.5:
            params["midpoint"] = rng.choice([0.25, 0.5, 0.75])
        return {op: params}
    return {op: sub()}


def _local(
    spec: Any, defaults: dict[str, Any], payload: dict[str, Any], scores: list[float | None]
) -> float | None:
    """The local mode's score, or None where it fails."""
    query = qm.FormulaQuery(formula=spec, defaults=defaults)
    prefetch_scores = [{1: s} if s is not None else {} for s in scores]
    try:
        local.validate_expression(query.formula)
        value = local.evaluate_expression(
            query.formula, 1, prefetch_scores, payload, {"": True}, local.parse_defaults(defaults)
        )
        narrowed = _f32(value)  # (what its rescoring does last)
    except (ValueError, OverflowError):
        return None
    return narrowed if math.isfinite(narrowed) else None


def test_random_formulas_score_as_the_local_mode_does() -> None:
    rng = random.Random(5)
    payloads = [
        {"a": 2, "b": 0.25, "arr": [3, 4], "o": {"v": -2}, "t": "x"},
        {"a": 0.5, "arr": [0], "o": {"v": 1.5}, "t": "y"},
        {"a": -1, "b": [4], "arr": [-0.5], "o": {"v": 0}},
    ]
    defaults = {"b": 1.5, "$score[1]": 0.125}
    agreed = failed = 0
    for _ in range(3000):
        spec = _random_expression(rng, 4)
        formula: Formula = parse(spec, defaults, F)
        for payload in payloads:
            scores: list[float | None] = [rng.choice([0.5, -0.25, 0.875]), rng.choice([None, 0.75])]
            want = _local(spec, defaults, payload, scores)
            try:
                got: float | None = formula.score(1, payload, scores)
            except ValidationError:
                got = None
            if want is None:
                assert got is None, (spec, payload, scores)
                failed += 1
            else:
                assert got == pytest.approx(want, rel=1e-5, abs=1e-6), (spec, payload, scores)
                agreed += 1
    assert agreed > 3000 and failed > 1000  # (both outcomes well exercised)


def test_datetimes_parse_as_the_local_mode_reads_them() -> None:
    base = "2024-01-01T00:00:00Z"
    for text in [
        "2024-03-01T12:00:00Z",
        "2024-03-01T12:00:00.25+02:00",
        "2024-03-01",
        "2024-03-01 12:00",
    ]:
        parsed, start = local_datetime(text), local_datetime(base)
        assert parsed is not None and start is not None
        since = {"sum": [{"datetime": text}, {"neg": {"datetime": base}}]}
        assert _score(since) == _f32(parsed.timestamp() - start.timestamp()), text
    # (local mode reads this too; Qdrant's parser, which the server follows, does not)
    with pytest.raises(ValidationError):
        _score({"datetime": "2024-03-01T12:00"})
