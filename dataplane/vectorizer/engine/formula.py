"""Qdrant's formula queries ("score boosting", Qdrant 1.14+): an expression over a
point's payload, its scores in the prefetches and filter conditions, parsed once
(``parse``) into a ``Formula`` that gives each candidate point its new score.

The semantics are Qdrant's (its ``rescore_formula`` module, and the parsing in
``universal_query/formula.rs``), evaluated in f64 and given as f32:

- a number is a constant (read as an f32, as Qdrant's REST API reads it); a string is a
  variable: ``$score`` / ``$score[i]`` is the point's score in prefetch ``i`` (else the
  default for it, if a number, else 0), anything else a payload path whose value must
  be a number (else the default for that path; a missing value without one, or a value
  that is not a number, is an error);
- a payload path reads what Qdrant's reads: the values the path reaches, an array at
  its end flattened one level (not after ``[]``): no value is missing, one is the value,
  several are an array (so not a number, a geo point or a datetime);
- any filter condition is 1.0 when the point matches it, else 0.0;
- ``mult`` stops at a zero factor and ``div`` at a zero numerator (what follows is not
  evaluated, so cannot fail); ``div`` by zero gives ``by_zero_default`` when given;
  ``div``, ``sqrt``, ``pow``, ``exp``, ``log10``, ``ln`` and ``acosh`` fail on a
  non-finite result, and so does a final score that is not a finite f32;
- ``max`` / ``min`` take at least one operand and skip NaNs; ``abs``, ``neg``, ``sum``
  never fail;
- ``geo_distance`` is the haversine distance in meters from ``origin`` to the geo point
  at ``to``; ``datetime`` (a constant) and ``datetime_key`` (a payload path) are
  seconds since the epoch, to the microsecond;
- ``lin_decay``, ``exp_decay`` and ``gauss_decay`` map ``|x - target|`` (target 0
  unless given) to 1 at 0 and to ``midpoint`` (0.5 unless given) at ``scale`` (1
  unless given): ``max(0, 1 - (1 - m) / s * d)``, ``exp(ln(m) / s * d)`` and
  ``exp(ln(m) / s^2 * d^2)``.

Errors at parsing and at evaluation are ``ValidationError``s naming the expression's
field (``query.formula.sum[1].sqrt``); the latter also name the point.
"""

from __future__ import annotations

import dataclasses
import math
import re
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from vectorizer.engine import geo, paths
from vectorizer.engine.datetimes import micros
from vectorizer.engine.filters import Payload, Predicate, compile_condition, payload_key
from vectorizer.engine.validation import PointId, as_float
from vectorizer.errors import ValidationError

# Qdrant's parser meets JSON through serde_json, which nests at most 128 deep.
MAX_DEPTH = 128
DEFAULT_SCORE = 0.0
DEFAULT_MIDPOINT = 0.5
DEFAULT_SCALE = 1.0

_SCORE = re.compile(r"\$score(?:\[(\d+)\])?")
_MISSING = object()
# operators taking a list of operands, one operand, or named parameters
_VARIADIC = ("mult", "sum", "max", "min")
_UNARY = ("neg", "abs", "sqrt", "exp", "log10", "ln", "acosh")
_DECAYS = ("lin_decay", "exp_decay", "gauss_decay")
_OPERATORS = frozenset(
    (*_VARIADIC, *_UNARY, *_DECAYS, "div", "pow", "geo_distance", "datetime", "datetime_key")
)

Path = paths.Path
Variable = int | Path  # a prefetch's index, or a payload path


class _Env:
    """What evaluating a formula reads of one point."""

    __slots__ = ("checks", "id", "payload", "scores")

    def __init__(
        self,
        pid: PointId,
        payload: Payload | None,
        scores: Sequence[float | None],
        checks: Sequence[Predicate],
    ) -> None:
        self.id = pid
        self.payload = payload
        self.scores = scores
        self.checks = checks


Eval = Callable[[_Env], float]


@dataclass(frozen=True)
class Formula:
    """A parsed formula. ``conditions`` are the filter conditions it tests (canonical
    specs, in the order their truths are passed to ``score``), ``predicates`` the same
    compiled on their own."""

    field: str
    conditions: tuple[Any, ...]
    predicates: tuple[Predicate, ...]
    root: Eval = dataclasses.field(repr=False, compare=False)

    def score(
        self,
        pid: PointId,
        payload: Payload | None,
        scores: Sequence[float | None],
        checks: Sequence[Predicate] | None = None,
    ) -> float:
        """The point's new score, an f32. ``scores`` holds its score in each prefetch
        (None where that prefetch did not find it); ``checks`` decide the conditions
        (``predicates`` unless given). A ValidationError if Qdrant's would fail."""
        env = _Env(pid, payload, scores, self.predicates if checks is None else checks)
        value = self.root(env)
        narrowed = _f32(value)
        if narrowed is None:
            _non_finite(env, self.field, f"{_show(value)} as f32")
        return narrowed


def parse(
    spec: Any,
    defaults: Any,
    field: str,
    canonical: Callable[[Any], Any] = lambda condition: condition,
) -> Formula:
    """The formula ``spec`` with its ``defaults`` (variable -> value); ``field`` names
    the expression in errors (its defaults are the sibling ``defaults``), and
    ``canonical`` puts each condition in the form the collection's filters take."""
    parent = field.rpartition(".")[0]
    parser = _Parser(_defaults(defaults, f"{parent}.defaults" if parent else "defaults"), canonical)
    root = parser.expression(spec, field, 1)
    return Formula(field, tuple(parser.conditions), tuple(parser.predicates), root)


# ---- defaults ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Defaults:
    scores: Mapping[int, float]  # the defaults that are numbers (Qdrant ignores the rest)
    values: Mapping[Path, Any]


def _defaults(raw: Any, field: str) -> _Defaults:
    """``{variable: value}``: keys are read as variables are, so ``$score`` and
    ``$score[0]`` name the same one (the last given wins, as Qdrant's map keeps it)."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ValidationError("defaults is an object of variable: value", field=field)
    scores: dict[int, float] = {}
    values: dict[Path, Any] = {}
    for key, value in raw.items():
        var = _variable(key, f"{field}.{key}")
        number = as_float(value)
        if number is None and _is_number(value):
            raise ValidationError("must be a number within f64 range", field=f"{field}.{key}")
        if isinstance(var, int):
            scores.pop(var, None)
            if number is not None:
                scores[var] = number
        else:
            values[var] = value
    return _Defaults(scores, values)


def _variable(raw: str, field: str) -> Variable:
    """``$score`` or ``$score[i]`` (the index), or a payload path (its steps)."""
    if raw.startswith("$"):
        match = _SCORE.fullmatch(raw)
        if match is None:
            raise ValidationError(
                f"{raw!r} is not a variable: the reserved ones are $score and $score[i]",
                field=field,
            )
        return int(match.group(1) or 0)
    return tuple(paths.parse(payload_key(raw, field), field))


# ---- parsing -----------------------------------------------------------------------------


class _Parser:
    def __init__(self, defaults: _Defaults, canonical: Callable[[Any], Any]) -> None:
        self.defaults = defaults
        self.canonical = canonical
        self.conditions: list[Any] = []
        self.predicates: list[Predicate] = []

    def expression(self, raw: Any, field: str, depth: int) -> Eval:
        if depth > MAX_DEPTH:
            raise ValidationError(f"expressions nest at most {MAX_DEPTH} deep", field=field)
        if isinstance(raw, bool):
            raise ValidationError(
                "an expression is a number, a variable, a condition or an operator object",
                field=field,
            )
        if isinstance(raw, int | float):
            value = _constant(raw, field)
            return lambda _env: value
        if isinstance(raw, str):
            return self.variable(raw, field)
        if not isinstance(raw, dict) or not raw:
            raise ValidationError(
                "an expression is a number, a variable, a condition or an operator object",
                field=field,
            )
        ops = _OPERATORS.intersection(raw)
        if not ops:
            return self.condition(raw, field)
        if len(raw) != 1:
            extra = sorted(set(raw) - {min(ops)})[0]
            raise ValidationError(
                f"an operator object has one key: {extra!r} is one too many", field=field
            )
        ((op, arg),) = raw.items()
        at = f"{field}.{op}"
        if op in _VARIADIC:
            return self.variadic(op, arg, at, depth)
        if op in _UNARY:
            return _unary(op, self.expression(arg, at, depth + 1), at)
        if op in _DECAYS:
            return self.decay(op, arg, at, depth)
        if op == "div":
            return self.div(arg, at, depth)
        if op == "pow":
            return self.pow(arg, at, depth)
        if op == "geo_distance":
            return self.geo_distance(arg, at)
        if op == "datetime":
            return _datetime(arg, at)
        return self.datetime_key(arg, at)

    def variable(self, raw: str, field: str) -> Eval:
        var = _variable(raw, field)
        if isinstance(var, int):
            index, default = var, self.defaults.scores.get(var, DEFAULT_SCORE)

            def score(env: _Env) -> float:
                scores = env.scores
                found = scores[index] if index < len(scores) else None
                return default if found is None else found

            return score
        read = self.reader(var, raw, field)

        def number(env: _Env) -> float:
            value = read(env, "number")
            if not _is_number(value):
                _type_error(env, field, raw, "number", "the value is not a number")
            return float(value)

        return number

    def reader(self, path: Path, key: str, field: str) -> Callable[[_Env, str], Any]:
        """How to read the one value at ``path`` (or its default) as a ``kind``."""
        default = self.defaults.values.get(path, _MISSING)
        wildcard = bool(path) and path[-1] is None

        def read(env: _Env, kind: str) -> Any:
            found = _values(env.payload, path, wildcard)
            if not found:
                if default is _MISSING:
                    _type_error(env, field, key, kind, "no value in the payload nor defaults")
                return default
            return found[0] if len(found) == 1 else found

        return read

    def condition(self, raw: dict[str, Any], field: str) -> Eval:
        spec = self.canonical(raw)
        predicate = compile_condition(spec, field)  # (and its errors name the field)
        index = len(self.conditions)
        self.conditions.append(spec)
        self.predicates.append(predicate)
        return lambda env: 1.0 if env.checks[index](env.id, env.payload) else 0.0

    def variadic(self, op: str, arg: Any, field: str, depth: int) -> Eval:
        if not isinstance(arg, list):
            raise ValidationError(f"{op} is a list of expressions", field=field)
        if op in ("max", "min") and not arg:
            raise ValidationError(f"{op} needs at least one operand", field=field)
        parts = [self.expression(a, f"{field}[{i}]", depth + 1) for i, a in enumerate(arg)]
        if op == "sum":
            return lambda env: _sum(parts, env)
        if op == "mult":
            return lambda env: _product(parts, env)
        if op == "max":
            return lambda env: _extreme(parts, env, -math.inf, 1.0)
        return lambda env: _extreme(parts, env, math.inf, -1.0)

    def div(self, arg: Any, field: str, depth: int) -> Eval:
        spec = _params(arg, field, {"left", "right"}, {"by_zero_default"})
        left = self.expression(spec["left"], f"{field}.left", depth + 1)
        right = self.expression(spec["right"], f"{field}.right", depth + 1)
        raw_default = spec.get("by_zero_default")
        default = None
        if raw_default is not None:
            default = _constant(raw_default, f"{field}.by_zero_default")

        def divided(env: _Env) -> float:
            top = left(env)
            if top == 0.0:  # (the denominator is not evaluated)
                return 0.0
            bottom = right(env)
            if bottom == 0.0 and default is not None:
                return default
            if bottom == 0.0:  # (Rust's x / 0: a signed infinity, or NaN for NaN)
                quotient = math.copysign(math.inf, top) * math.copysign(1.0, bottom)
                quotient = math.nan if math.isnan(top) else quotient
            else:
                quotient = top / bottom
            if not math.isfinite(quotient):
                _non_finite(env, field, f"{_show(top)}/{_show(bottom)} = {_show(quotient)}")
            return quotient

        return divided

    def pow(self, arg: Any, field: str, depth: int) -> Eval:
        spec = _params(arg, field, {"base", "exponent"}, set())
        base = self.expression(spec["base"], f"{field}.base", depth + 1)
        exponent = self.expression(spec["exponent"], f"{field}.exponent", depth + 1)

        def power(env: _Env) -> float:
            b, e = base(env), exponent(env)
            try:
                result = math.pow(b, e)
            except (OverflowError, ValueError):  # (Rust's powf: inf or NaN)
                result = math.nan
            if not math.isfinite(result):
                _non_finite(env, field, f"{_show(b)}^{_show(e)}")
            return result

        return power

    def decay(self, op: str, arg: Any, field: str, depth: int) -> Eval:
        spec = _params(arg, field, {"x"}, {"target", "scale", "midpoint"})
        x = self.expression(spec["x"], f"{field}.x", depth + 1)
        target = None
        if spec.get("target") is not None:
            target = self.expression(spec["target"], f"{field}.target", depth + 1)
        lam = _lambda(op, spec.get("midpoint"), spec.get("scale"), field)

        def decayed(env: _Env) -> float:
            diff = x(env) - (0.0 if target is None else target(env))
            if op == "lin_decay":
                value = -lam * abs(diff) + 1.0
                return value if value > 0.0 else 0.0  # (Rust's max: 0 for NaN too)
            if op == "exp_decay":
                return _exp(lam * abs(diff))
            return _exp(lam * diff * diff)

        return decayed

    def geo_distance(self, arg: Any, field: str) -> Eval:
        spec = _params(arg, field, {"origin", "to"}, set())
        lon, lat = geo.point(spec["origin"], f"{field}.origin")
        key = spec["to"]
        if not isinstance(key, str):
            raise ValidationError("to is a payload path", field=f"{field}.to")
        read = self.reader(_variable_path(key, f"{field}.to"), key, field)

        def distance(env: _Env) -> float:
            at = geo.stored_point(read(env, "geo point"))
            if at is None:
                _type_error(env, field, key, "geo point", "the value is not one")
            return geo.distance(lon, lat, at[0], at[1])

        return distance

    def datetime_key(self, key: Any, field: str) -> Eval:
        if not isinstance(key, str):
            raise ValidationError("datetime_key is a payload path", field=field)
        read = self.reader(_variable_path(key, field), key, field)

        def seconds(env: _Env) -> float:
            value = read(env, "datetime")
            at = micros(value) if isinstance(value, str) else None
            if at is None:
                _type_error(env, field, key, "datetime", "the value is not an RFC 3339 datetime")
            return at / 1e6

        return seconds


def _variable_path(key: str, field: str) -> Path:
    var = _variable(key, field)
    if isinstance(var, int):
        raise ValidationError("a payload path, not a score", field=field)
    return var


def _params(arg: Any, field: str, required: set[str], optional: set[str]) -> dict[str, Any]:
    names = sorted(required) + sorted(optional)
    shown = ", ".join(n if n in required else f"{n}?" for n in names)
    if not isinstance(arg, dict):
        raise ValidationError(f"must be {{{shown}}}", field=field)
    unknown = set(arg) - required - optional
    if unknown:
        raise ValidationError(f"unknown field (it is {{{shown}}})", field=f"{field}.{min(unknown)}")
    missing = required - set(arg)
    if missing:
        raise ValidationError("is required", field=f"{field}.{min(missing)}")
    return arg


def _constant(raw: Any, field: str) -> float:
    """A number as Qdrant's REST API reads it: an f32."""
    number = as_float(raw)
    value = None if number is None else _f32(number)
    if value is None:
        raise ValidationError("must be a number within f32 range", field=field)
    return value


def _datetime(raw: Any, field: str) -> Eval:
    at = micros(raw) if isinstance(raw, str) else None
    if at is None:
        raise ValidationError("datetime is an RFC 3339 datetime string", field=field)
    seconds = at / 1e6
    return lambda _env: seconds


def _lambda(op: str, midpoint: Any, scale: Any, field: str) -> float:
    """The decay's constant from its f32 ``midpoint`` and ``scale``, as Qdrant's."""
    m = DEFAULT_MIDPOINT if midpoint is None else _constant(midpoint, f"{field}.midpoint")
    s = DEFAULT_SCALE if scale is None else _constant(scale, f"{field}.scale")
    if op == "lin_decay" and not 0.0 <= m <= 1.0:
        raise ValidationError("a linear decay's midpoint is in [0, 1]", field=f"{field}.midpoint")
    if op != "lin_decay" and not 0.0 < m < 1.0:
        raise ValidationError("a decay's midpoint is in (0, 1)", field=f"{field}.midpoint")
    if s <= 0.0:
        raise ValidationError("scale must be positive", field=f"{field}.scale")
    if op == "lin_decay":
        return (1.0 - m) / s
    if op == "exp_decay":
        return math.log(m) / s
    return math.log(m) / (s * s)


# ---- evaluation --------------------------------------------------------------------------


def _sum(parts: Sequence[Eval], env: _Env) -> float:
    total = 0.0
    for part in parts:
        total += part(env)
    return total


def _product(parts: Sequence[Eval], env: _Env) -> float:
    product = 1.0
    for part in parts:
        value = part(env)
        if value == 0.0:  # (the factors after it are not evaluated)
            return 0.0
        product *= value
    return product


def _extreme(parts: Sequence[Eval], env: _Env, start: float, sign: float) -> float:
    """The largest (``sign`` 1) or smallest (-1) operand; NaNs are skipped, as Rust's
    ``f64::max`` and ``min`` skip them."""
    best = start
    for part in parts:
        value = part(env)
        if sign * value > sign * best:
            best = value
    return best


def _unary(op: str, inner: Eval, field: str) -> Eval:
    if op == "neg":
        return lambda env: -inner(env)
    if op == "abs":
        return lambda env: abs(inner(env))
    function, shown = _FUNCTIONS[op]

    def applied(env: _Env) -> float:
        value = inner(env)
        try:
            result = function(value)
        except (OverflowError, ValueError):  # (Rust gives inf or NaN)
            result = math.nan
        if not math.isfinite(result):
            _non_finite(env, field, shown.format(_show(value)))
        return result

    return applied


def _exp(x: float) -> float:
    try:
        return math.exp(x)
    except OverflowError:
        return math.inf


_FUNCTIONS: dict[str, tuple[Callable[[float], float], str]] = {
    "sqrt": (math.sqrt, "√{}"),
    "exp": (math.exp, "exp({})"),
    "log10": (math.log10, "log10({})"),
    "ln": (math.log, "ln({})"),
    "acosh": (math.acosh, "acosh({})"),
}


def _values(payload: Payload | None, path: Path, wildcard: bool) -> list[Any]:
    """Every value ``path`` reaches (``paths.reach``); an array reached is flattened one
    level unless the path ends in ``[]``."""
    found = list(paths.reach(payload, path))
    if wildcard:
        return found
    out: list[Any] = []
    for value in found:
        if isinstance(value, list):
            out.extend(value)
        else:
            out.append(value)
    return out


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _f32(value: float) -> float | None:
    """``value`` rounded to the nearest f32; None when that is not finite."""
    if not math.isfinite(value):
        return None
    try:
        narrowed: float = struct.unpack("<f", struct.pack("<f", value))[0]
    except OverflowError:
        return None
    return narrowed


def _show(x: float) -> str:
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return f"{x:.0f}" if x.is_integer() and abs(x) < 1e16 else repr(x)


def _non_finite(env: _Env, field: str, expression: str) -> NoReturn:
    raise ValidationError(
        f"point {env.id!r}: the expression {expression} produced a non-finite number",
        field=field,
    )


def _type_error(env: _Env, field: str, key: str, kind: str, why: str) -> NoReturn:
    raise ValidationError(
        f"point {env.id!r}: expected a {kind} for {key!r} in the payload or the formula "
        f"defaults: {why}",
        field=field,
    )
