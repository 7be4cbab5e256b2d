"""Values between Python and the broker's JSON.

Results: every column arrives as a JSON value together with PostgreSQL's type
name (`docs/protocol.md`, "Values"); `decoder(type_name)` returns the function
that turns that value into the Python object psycopg2 would have returned.

Parameters: `encode_params()` turns Python values into JSON values. The broker
binds every parameter as text and PostgreSQL parses it by the parameter's
type, so a value only needs a text spelling PostgreSQL accepts.

Written for Python 3.9: `datetime.fromisoformat` there does not accept
fractions of one to five digits, so dates and times are parsed here.
"""

import datetime
import decimal
import math
import re
import uuid

from .errors import DataError, ProgrammingError

__all__ = ["decoder", "encode_params"]

_UTC = datetime.timezone.utc

# ---------------------------------------------------------------- results

_DATE = r"(\d{4})-(\d{2})-(\d{2})"
_TIME = r"(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?"
_OFFSET = r"(?:(Z)|([+-])(\d{2}):(\d{2})(?::(\d{2}))?)"
_DATE_RE = re.compile(_DATE + r"\Z")
_TIME_RE = re.compile(_TIME + _OFFSET + r"?\Z")
_TIMESTAMP_RE = re.compile(_DATE + r"T" + _TIME + _OFFSET + r"?\Z")
# The broker signs each component on its own: "P-1Y-2M-3DT-4H-5M-6.25S".
_INTERVAL_RE = re.compile(
    r"(-)?P(?:(-?\d+)Y)?(?:(-?\d+)M)?(?:(-?\d+)W)?(?:(-?\d+)D)?"
    r"(?:T(?:(-?\d+)H)?(?:(-?\d+)M)?(?:(-?\d+(?:\.\d+)?)S)?)?\Z"
)


def _bad(type_name, value, why):
    return DataError(
        "cannot convert %s value %r to a Python object: %s "
        "(cast the column to text, e.g. col::text, to read it as a string)"
        % (type_name, value, why)
    )


def _micro(fraction):
    return int((fraction or "").ljust(6, "0"))


def _tzinfo(z, sign, hours, minutes, seconds):
    if z:
        return _UTC
    if sign is None:
        return None
    delta = datetime.timedelta(
        hours=int(hours), minutes=int(minutes), seconds=int(seconds or 0)
    )
    if not delta:
        return _UTC
    return datetime.timezone(-delta if sign == "-" else delta)


def _date(value):
    if value == "infinity":
        return datetime.date.max
    if value == "-infinity":
        return datetime.date.min
    m = _DATE_RE.match(value)
    if m is None:
        raise _bad("date", value, "year out of Python's range 1..9999")
    try:
        return datetime.date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    except ValueError as e:
        raise _bad("date", value, e) from None


def _time(value):
    m = _TIME_RE.match(value)
    if m is None:
        raise _bad("time", value, "not an ISO 8601 time")
    hour, minute, second, fraction = m.group(1, 2, 3, 4)
    hour = int(hour)
    if hour == 24:
        # PostgreSQL allows 24:00:00; psycopg2 returns midnight for it.
        hour = 0
    return datetime.time(
        hour, int(minute), int(second), _micro(fraction), _tzinfo(*m.group(5, 6, 7, 8, 9))
    )


def _timestamp_decoder(aware):
    type_name = "timestamptz" if aware else "timestamp"
    # psycopg2: infinities become datetime.max/min (in UTC when aware).
    tz = _UTC if aware else None
    infinite = {
        "infinity": datetime.datetime.max.replace(tzinfo=tz),
        "-infinity": datetime.datetime.min.replace(tzinfo=tz),
    }

    def decode(value):
        if value in infinite:
            return infinite[value]
        m = _TIMESTAMP_RE.match(value)
        if m is None:
            raise _bad(type_name, value, "year out of Python's range 1..9999")
        g = m.groups()
        try:
            return datetime.datetime(
                int(g[0]), int(g[1]), int(g[2]), int(g[3]), int(g[4]), int(g[5]),
                _micro(g[6]), _tzinfo(*g[7:12]),
            )
        except ValueError as e:
            raise _bad(type_name, value, e) from None

    return decode


def _interval(value):
    """ISO 8601 duration → timedelta, with psycopg2's arithmetic: a month is
    30 days and a year 365 days (timedelta has no months)."""
    m = _INTERVAL_RE.match(value)
    if m is None:
        raise _bad("interval", value, "not an ISO 8601 duration")
    negate, years, months, weeks, days, hours, minutes, seconds = m.groups()
    total_days = (
        int(years or 0) * 365 + int(months or 0) * 30 + int(weeks or 0) * 7 + int(days or 0)
    )
    micros = (
        (int(hours or 0) * 3600 + int(minutes or 0) * 60) * 1000000
        + int(decimal.Decimal(seconds or 0) * 1000000)
    )
    try:
        delta = datetime.timedelta(days=total_days, microseconds=micros)
    except OverflowError as e:
        raise _bad("interval", value, e) from None
    return -delta if negate else delta


def _float(value):
    # NaN and the infinities come as strings; float() reads both spellings.
    return float(value)


def _bytea(value):
    # psycopg2 returns memoryview for bytea; keep that for drop-in
    # compatibility (bytes(v), v.tobytes() and v.hex() all work).
    if not value.startswith("\\x"):
        raise _bad("bytea", value, "not in PostgreSQL's hex format")
    return memoryview(bytes.fromhex(value[2:]))


# JSON values that already are the Python value (numbers, strings, bools,
# parsed JSON) need no decoder: those type names are simply absent here.
_DECODERS = {
    "float4": _float,
    "float8": _float,
    "numeric": decimal.Decimal,
    "uuid": uuid.UUID,
    "bytea": _bytea,
    "date": _date,
    "time": _time,
    "timetz": _time,
    "timestamp": _timestamp_decoder(aware=False),
    "timestamptz": _timestamp_decoder(aware=True),
    "interval": _interval,
}


def _array_decoder(element):
    def decode(value):
        return [
            None if v is None else decode(v) if isinstance(v, list) else element(v)
            for v in value
        ]

    return decode


def decoder(type_name):
    """The function that converts a non-null value of PostgreSQL type
    `type_name` (as named in the `columns` frame), or None when the JSON value
    is already the Python value."""
    if type_name.startswith("_"):
        element = _DECODERS.get(type_name[1:])
        return _array_decoder(element) if element is not None else None
    return _DECODERS.get(type_name)


# ---------------------------------------------------------------- parameters

def _encode(value):
    # bool before int: bool is a subclass of int.
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return value
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "\\x" + bytes(value).hex()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime.timedelta):
        return "%d days %d.%06d seconds" % (value.days, value.seconds, value.microseconds)
    if isinstance(value, (datetime.date, datetime.time)):
        # datetime is a subclass of date; isoformat() suits both, with offset
        # for aware values.
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return [_encode(v) for v in value]
    if isinstance(value, dict):
        return value
    raise ProgrammingError("can't adapt type %r" % type(value).__name__)


def encode_params(params):
    """`params` (None, a list or a tuple) as a JSON array."""
    if params is None:
        return []
    if isinstance(params, (str, bytes)) or not isinstance(params, (list, tuple)):
        raise TypeError(
            "params must be a list or a tuple of values for the %%s placeholders, "
            "not %s" % type(params).__name__
        )
    return [_encode(v) for v in params]
