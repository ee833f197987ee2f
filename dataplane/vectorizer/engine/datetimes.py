"""Datetime strings as Qdrant reads them, as integer microseconds since the epoch.

Qdrant (``DateTimePayloadType::from_str``) accepts, with chrono's parsers:

- RFC 3339 (``t`` or a space may stand for ``T``, ``z`` for ``Z``), and chrono's relaxed
  form of it (``DateTime::from_str``): ``UTC`` for the zone, a space before it, no colon
  in the offset, whitespace between the parts and at the end;
- ``%Y-%m-%dT%H:%M:%S%.f%#z`` and the same with whitespace (or nothing) for the ``T``:
  a ``Z``, or an offset whose minutes may be left out (``+01``);
- without a zone, in UTC: ``%Y-%m-%dT%H:%M:%S%.f``, ``%Y-%m-%d %H:%M:%S%.f``,
  ``%Y-%m-%d %H:%M`` and ``%Y-%m-%d``.

chrono's fields take one or two digits (years up to four, or a sign and any number),
skip whitespace ahead of each number, and read a fraction to the nanosecond; a second
of 60 is a leap second (the next second's first instant, as a timestamp). Nothing else
is a datetime: not ISO 8601's other forms (``20240101``, ``2024-W01-1``,
``2024-01-01T10``, a comma before the fraction), not ``2024-01-01T10:00`` nor a
lower-case ``t`` without a zone. Qdrant keeps an instant as microseconds (an i64, the
fraction cut), which is how filters, indexes and ordered listings compare them here.
"""

from __future__ import annotations

import functools
import re
from datetime import UTC, datetime, timedelta

# Rust's char::is_whitespace (Python's \s also takes \x1c-\x1f), which chrono skips
_SPACE = "\t-\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
# chrono reads numbers greedily and never backs off: possessive quantifiers, as it does
_WS = f"[{_SPACE}]*+"
_COLONS = f"[:{_SPACE}]*+"  # (between an offset's hours and minutes)
_YEAR = rf"{_WS}(?P<y>[+-][0-9]++|[0-9]{{1,4}}+)"
_SECONDS = rf":{_WS}(?P<s>[0-9]{{1,2}}+)(?:\.(?P<f>[0-9]++))?"
_OFFSET = f"(?P<sign>[+\\-\u2212])(?P<oh>[0-9]{{2}}){_COLONS}"
# The strftime forms (``parse_from_str``): a date, then maybe a time after a T, or after
# whitespace or nothing, with seconds, a fraction and then maybe a zone (%#z: Z, or an
# offset whose minutes may be missing); or (after whitespace only: ``micros`` checks it)
# hours and minutes.
_FORMATS = re.compile(
    rf"{_YEAR}-{_WS}(?P<mo>[0-9]{{1,2}}+)-{_WS}(?P<d>[0-9]{{1,2}}+)"
    rf"(?:(?P<sep>T|{_WS}){_WS}(?P<h>[0-9]{{1,2}}+):{_WS}(?P<mi>[0-9]{{1,2}}+)"
    rf"(?:{_SECONDS}(?:{_WS}(?:[zZ]|{_OFFSET}(?P<om>[0-5][0-9])?))?)?)?",
    re.ASCII,
)
# RFC 3339 and chrono's relaxed form of it (``DateTime::from_str``), which takes all of
# RFC 3339: whitespace before the separators too, one of T, t or a space between date
# and time, seconds, and a zone (UTC in any case, Z, z, or an offset with its minutes)
# followed by whitespace only.
_RELAXED = re.compile(
    rf"{_YEAR}{_WS}-{_WS}(?P<mo>[0-9]{{1,2}}+){_WS}-{_WS}(?P<d>[0-9]{{1,2}}+)(?P<sep>[tT ])"
    rf"{_WS}(?P<h>[0-9]{{1,2}}+){_WS}:{_WS}(?P<mi>[0-9]{{1,2}}+){_WS}{_SECONDS}{_WS}"
    rf"(?:[uU][tT][cC]|[zZ]|{_OFFSET}(?P<om>[0-5][0-9])){_WS}",
    re.ASCII,
)
# What most datetimes look like: RFC 3339 (T, Z and a fraction's digits in any number) or
# its shapes without a zone, or without a time.
_COMMON = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}(?:[T ][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?"
    r"(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])?)?",
    re.ASCII,
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
# chrono's dates (NaiveDate::MIN and MAX)
MIN_YEAR = -262_143
MAX_YEAR = 262_142
_DAYS_IN_MONTH = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_MICROS_PER_DAY = 86_400_000_000
_SCALE = (0, 100_000, 10_000, 1_000, 100, 10, 1)  # a fraction's digits -> microseconds


@functools.lru_cache(maxsize=4096)  # (filters call it per payload value; values repeat)
def micros(text: str) -> int | None:
    """Microseconds since the epoch of the instant ``text`` names (UTC when it has no
    zone), or None when Qdrant does not read it as a datetime."""
    if _COMMON.fullmatch(text):
        # datetime's parser, in C, reads these shapes as chrono does, several times
        # faster than ``parse``; what it refuses (a leap second, year 0) ``parse`` reads
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            return parse(text)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return (moment - _EPOCH) // _MICROSECOND
    return parse(text)


def parse(text: str) -> int | None:
    """``micros``, read with chrono's grammar (``_FORMATS``, ``_RELAXED``)."""
    found = _FORMATS.fullmatch(text)
    if found is None or (found[4] == "T" and found[7] is None):  # (HH:MM after a T)
        found = _RELAXED.fullmatch(text)
        if found is None:
            return None
    y, mo, d, _sep, h, mi, s, f, sign, oh, om = found.groups()
    year, month, day = int(y), int(mo), int(d)
    if not MIN_YEAR <= year <= MAX_YEAR or not 1 <= month <= 12 or day == 0:
        return None
    if day > _DAYS_IN_MONTH[month - 1] and not (month == 2 and day == 29 and _leap(year)):
        return None
    seconds = 0
    if h is not None:
        hour, minute, second = int(h), int(mi), 0 if s is None else int(s)
        if hour > 23 or minute > 59 or second > 60:  # (60: a leap second)
            return None
        seconds = hour * 3600 + minute * 60 + second
    if sign is not None:
        offset = int(oh) * 3600 + (0 if om is None else int(om) * 60)
        if offset >= 86_400:  # (chrono's FixedOffset: less than a day)
            return None
        seconds += -offset if sign == "+" else offset
    at = days_from_civil(year, month, day) * _MICROS_PER_DAY + seconds * 1_000_000
    if f is not None:  # (cut to the microsecond, as Qdrant's i64 keeps it)
        at += int(f[:6]) * _SCALE[min(len(f), 6)]
    if not _FIRST <= at < _AFTER_LAST:
        return None  # (an offset took it past chrono's range)
    return at


def _leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def days_from_civil(year: int, month: int, day: int) -> int:
    """Days from 1970-01-01 to a date of the proleptic Gregorian calendar (year 0 is
    1 BC), for any year: Howard Hinnant's ``days_from_civil``."""
    year -= month <= 2
    era = year // 400
    of_era = year - era * 400
    of_year = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    return era * 146_097 + of_era * 365 + of_era // 4 - of_era // 100 + of_year - 719_468


_FIRST = days_from_civil(MIN_YEAR, 1, 1) * _MICROS_PER_DAY
_AFTER_LAST = days_from_civil(MAX_YEAR + 1, 1, 1) * _MICROS_PER_DAY
