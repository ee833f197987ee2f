"""Datetime strings read as Qdrant reads them (chrono's parsers in
``DateTimePayloadType::from_str``), as integer microseconds since the epoch."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vectorizer.engine.datetimes import MAX_YEAR, MIN_YEAR, days_from_civil, micros, parse

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)
_HOUR = 3600 * 10**6


def _us(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, us: int = 0
) -> int:
    """Microseconds since the epoch of a UTC date and time, by datetime's arithmetic."""
    moment = datetime(year, month, day, hour, minute, second, us, tzinfo=UTC)
    return (moment - _EPOCH) // _ONE_US


TEN = _us(2024, 1, 1, 10)  # 2024-01-01T10:00:00Z


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # RFC 3339 (chrono's parse_from_rfc3339): T, t or a space; Z or z; an offset
        ("2024-01-01T10:00:00Z", TEN),
        ("2024-01-01t10:00:00z", TEN),  # RFC 3339 §5.6: the letters in either case
        ("2024-01-01t10:00:00Z", TEN),
        ("2024-01-01 10:00:00z", TEN),
        ("2024-01-01T10:00:00.5Z", TEN + 500_000),
        ("2024-01-01T11:30:00+01:30", TEN),
        ("2024-01-01T08:00:00-02:00", TEN),
        ("2024-01-01T08:00:00\u221202:00", TEN),  # (a MINUS SIGN, as RFC 3339 allows)
        # chrono's DateTime::from_str: UTC, a space before the zone, trailing whitespace
        ("2024-01-01 10:00:00 UTC", TEN),  # (how Qdrant prints a datetime)
        ("2024-01-01T10:00:00utc", TEN),
        ("2024-01-01 11:00:00 +01:00", TEN),
        ("2024-01-01T10:00:00Z \n", TEN),
        ("2024 - 01 - 01T 10 : 00 : 00Z", TEN),
        # %Y-%m-%dT%H:%M:%S%.f%#z and with a space: no colon, or no minutes, in the offset
        ("2024-01-01T11:00:00+0100", TEN),
        ("2024-01-01T11:00:00+01", TEN),
        ("2024-01-01 11:00:00.000+01", TEN),
        ("2024-01-01T11:00:00 +01:00", TEN),
        ("2024-01-01T10:00:00 Z", TEN),
        ("2024-01-01 11:00:00 +01 ", TEN),  # (what follows the hours is colons or spaces)
        ("2024-1-1T10:0:0Z", TEN),  # (chrono's fields take one digit as well)
        ("2024-01-0110:00:00Z", TEN),  # (its space matches no space too)
        # without a zone: UTC
        ("2024-01-01T10:00:00", TEN),
        ("2024-01-01T10:00:00.123456789", TEN + 123_456),  # (nanoseconds, cut)
        ("2024-01-01 10:00:00", TEN),
        ("2024-01-01  10:00:00.25", TEN + 250_000),
        ("2024-01-01 10:00", TEN),
        ("2024-01-01", _us(2024, 1, 1)),
        (" 2024-01-01", _us(2024, 1, 1)),  # (whitespace before a number is skipped)
        ("2024-1-1", _us(2024, 1, 1)),
        ("2024-02-29", _us(2024, 2, 29)),
        # chrono's years: up to four digits, or a sign and any number of them
        ("+2024-01-01", _us(2024, 1, 1)),
        ("999-01-01", _us(999, 1, 1)),
        ("0000-01-01", _us(1, 1, 1) - 366 * 24 * _HOUR),  # (year 0 is a leap year)
        ("-0001-12-31T00:00:00Z", _us(1, 1, 1) - 367 * 24 * _HOUR),
        # a leap second: the next second's first instant, as chrono's timestamp_micros
        ("2016-12-31T23:59:60Z", _us(2017, 1, 1)),
        ("2016-12-31T23:59:60.5Z", _us(2017, 1, 1) + 500_000),
        # before the epoch: the fraction still counts forward
        ("1969-12-31T23:59:59.9999995Z", -1),
    ],
)
def test_qdrant_formats_are_read(text: str, expected: int) -> None:
    assert micros(text) == expected
    assert parse(text) == expected  # (without the shortcut)


@pytest.mark.parametrize(
    "text",
    [
        # ISO 8601 forms that datetime.fromisoformat takes and Qdrant does not
        "20240101",
        "2024-W01-1",
        "2024-001",
        "2024-01-01T10",
        "2024-01-01T10:00:00,5",
        "2024-01-01T100000Z",
        # shapes Qdrant's list leaves out
        "2024-01-01T10:00",  # (hours and minutes only after a space)
        "2024-01-01t10:00:00",  # (a lower-case t only before a zone: RFC 3339's)
        "2024-01-01t10:00:00+01",  # (RFC 3339 offsets have minutes)
        "2024-01-01 ",  # (trailing whitespace only after a zone)
        "2024-01-01\n",
        "2024-01-01T10:00:00.Z",
        "2024-01-01T10:00:00+01:0",
        "2024-01-01T10:00:00+1",
        "2024-01-01T10:00:00 GMT",
        "2024-01-01 UTC",
        "12024-01-01",  # (five digits: a sign first)
        "２０２４-01-01",  # (digits are ASCII)
        # out of range
        "2024-02-30",
        "2023-02-29",
        "2024-13-01",
        "2024-00-10",
        "2024-01-00",
        "2024-01-01T24:00:00Z",
        "2024-01-01T10:60:00Z",
        "2024-01-01T10:00:61Z",
        "2024-01-01T10:00:00+24:00",
        "2024-01-01T10:00:00+01:60",
        f"+{MAX_YEAR + 1}-01-01",
        f"{MIN_YEAR - 1}-01-01",
        # not a datetime at all
        "",
        "yesterday",
        "1714564800",
    ],
)
def test_what_qdrant_does_not_read_is_not_a_datetime(text: str) -> None:
    assert micros(text) is None
    assert parse(text) is None


def test_the_ends_of_chronos_range() -> None:
    assert micros(f"{MIN_YEAR}-01-01") == days_from_civil(MIN_YEAR, 1, 1) * 24 * _HOUR
    last = micros(f"+{MAX_YEAR}-12-31T23:59:59.999999Z")
    assert last == days_from_civil(MAX_YEAR + 1, 1, 1) * 24 * _HOUR - 1


def test_far_future_instants_keep_their_microseconds() -> None:
    """Qdrant's datetimes are i64 microseconds: nothing is lost to float seconds, which
    cannot tell microseconds apart past about year 2242."""
    base = _us(3000, 1, 1)
    got = [micros(f"3000-01-01T00:00:00.00000{i}Z") for i in (1, 2, 3)]
    assert got == [base + 1, base + 2, base + 3]
    assert micros("9999-12-31T23:59:59.999999Z") == _us(9999, 12, 31, 23, 59, 59, 999999)


def test_days_from_civil_counts_as_dates_do() -> None:
    epoch = date(1970, 1, 1)
    day = date(1, 1, 1)
    while day.year < 9999:
        assert days_from_civil(day.year, day.month, day.day) == (day - epoch).days, day
        day += timedelta(days=17)
    for year in range(-1200, 1200, 7):  # the calendar repeats every 400 years
        for month in (1, 2, 3, 12):
            shifted = days_from_civil(year + 400, month, 1)
            assert days_from_civil(year, month, 1) + 146_097 == shifted


_two = st.integers(0, 99).map(lambda n: f"{n:02d}")


@st.composite
def _common(draw: st.DrawFn) -> str:
    """A string of the shapes ``micros`` hands to datetime's parser, fields in range
    or out of it."""
    text = f"{draw(st.integers(0, 9999)):04d}-{draw(_two)}-{draw(_two)}"
    if draw(st.booleans()):
        text += draw(st.sampled_from("T ")) + f"{draw(_two)}:{draw(_two)}:{draw(_two)}"
        if draw(st.booleans()):
            text += "." + draw(st.text("0123456789", min_size=1, max_size=10))
        zone = draw(st.sampled_from(["", "Z", "+", "-"]))
        if zone in ("+", "-"):
            zone += f"{draw(st.integers(0, 23)):02d}:{draw(st.integers(0, 59)):02d}"
        text += zone
    return text


@settings(max_examples=3000, deadline=None)
@given(text=_common())
def test_the_shortcut_reads_as_chronos_grammar(text: str) -> None:
    assert micros.__wrapped__(text) == parse(text), text
