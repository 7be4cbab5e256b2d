"""Results of protocol version 2: PostgreSQL's text form of every value,
turned into the Python object psycopg2's default typecasters make of it.

psycopg2 (2.9, `psycopg/typecast_builtins.c`, `typecast_basic.c`,
`typecast_datetime.c`, `typecast_binary.c`, `typecast_array.c`, `lib/_json.py`)
picks a typecaster by the column's type OID; every OID it has none for comes
back as the text itself (`str`). The parsers below follow psycopg2's C
parsers character by character, including their leniency and their errors,
so that a tool sees what it saw with the old library (what
`psycopg2.extras.RealDictCursor` returned): `uuid` and `xid` as `str`,
`uuid[]` as the string `'{...}'`, `bytea` as `memoryview`, an interval's month
as 30 days, `timestamptz` with the offset PostgreSQL printed in the session's
time zone as `datetime.timezone(timedelta(...))`.

`caster(oid)` returns the function for one column, or None where the text is
already the value.
"""

import datetime
import decimal
import json
import re

from . import errors

__all__ = ["caster", "parse_array"]


# ---------------------------------------------------------------- scalars

def _int(s):
    return int(s)


def _float(s):
    return float(s)


def _bool(s):
    if s[:1] in ("t", "T"):
        return True
    if s[:1] in ("f", "F"):
        return False
    raise errors.InterfaceError("can't parse boolean: '%s'" % s)


def _bytea(s):
    if s.startswith("\\x"):
        # hex format; like psycopg2, anything that is not a hex digit is skipped
        digits = [c for c in s[2:] if c in "0123456789abcdefABCDEF"]
        return memoryview(bytes.fromhex("".join(digits[: len(digits) // 2 * 2])))
    # escape format: \ooo octal, \\ and any other escaped character as itself
    raw = s.encode("utf-8")
    out = bytearray()
    i, n = 0, len(raw)
    while i < n:
        c = raw[i]
        if c != 0x5C:
            out.append(c)
            i += 1
            continue
        a, b, d = raw[i + 1:i + 2], raw[i + 2:i + 3], raw[i + 3:i + 4]
        if a and b and d and 0x30 <= a[0] <= 0x33 and 0x30 <= b[0] <= 0x37 and 0x30 <= d[0] <= 0x37:
            out.append(((a[0] - 0x30) << 6) | ((b[0] - 0x30) << 3) | (d[0] - 0x30))
            i += 4
        else:
            if a:
                out.append(a[0])
            i += 2
    return memoryview(bytes(out))


def _json(s):
    return json.loads(s)


# ---------------------------------------------------------------- date and time

def _digit(c):
    # psycopg2 accumulates (c - '0') for every character it does not know
    return ord(c) - 48


def _parse_date(s):
    """typecast_parse_date: (fields parsed, year, month, day, rest)."""
    acc, cz = -1, 0
    y = m = d = 0
    i, n = 0, len(s)
    while cz < 3 and i < n:
        c = s[i]
        if c in "- T":
            if cz == 0:
                y = acc
            elif cz == 1:
                m = acc
            elif cz == 2:
                d = acc
            acc = -1
            cz += 1
        else:
            acc = (0 if acc == -1 else acc * 10) + _digit(c)
        i += 1
    if acc != -1:
        d = acc
        cz += 1
    if len(s) - i >= 2 and s.endswith("BC"):
        y = -y
    return cz, y, m, d, s[i:]


def _parse_time(s):
    """typecast_parse_time: (fields parsed, hh, mm, ss, us, tz seconds)."""
    acc, cz = -1, 0
    hh = mm = ss = us = 0
    tzsign, tzhh, tzmm, tzss = 1, 0, 0, 0
    usd = 0
    for c in s:
        if cz >= 7:
            break
        if c == ":":
            if cz == 0:
                hh = acc
            elif cz == 1:
                mm = acc
            elif cz == 2:
                ss = acc
            elif cz == 3:
                us = acc
            elif cz == 4:
                tzhh = acc
            elif cz == 5:
                tzmm = acc
            acc = -1
            cz += 1
        elif c == ".":
            if cz != 2:
                return -1, 0, 0, 0, 0, 0
            ss = acc
            acc = -1
            cz += 1
        elif c in "+-":
            if cz < 2 or cz > 3:
                return -1, 0, 0, 0, 0, 0
            if c == "-":
                tzsign = -1
            if cz == 2:
                ss = acc
            elif cz == 3:
                us = acc
            acc = -1
            cz = 4
        elif c in " BC":
            pass
        else:
            acc = (0 if acc == -1 else acc * 10) + _digit(c)
            if cz == 3:
                usd += 1
    if acc != -1:
        if cz == 0:
            hh = acc
            cz += 1
        elif cz == 1:
            mm = acc
            cz += 1
        elif cz == 2:
            ss = acc
            cz += 1
        elif cz == 3:
            us = acc
            cz += 1
        elif cz == 4:
            tzhh = acc
            cz += 1
        elif cz == 5:
            tzmm = acc
            cz += 1
        elif cz == 6:
            tzss = acc
    tz = tzsign * (3600 * tzhh + 60 * tzmm + tzss)
    if us != 0:
        while usd < 6:
            us *= 10
            usd += 1
    if hh == 24:
        hh = 0
    return cz, hh, mm, ss, us, tz


def _tzinfo(seconds):
    # psycopg2's default cursor.tzinfo_factory is datetime.timezone
    return datetime.timezone(datetime.timedelta(seconds=seconds))


def _date(s):
    if s == "infinity":
        return datetime.date.max
    if s == "-infinity":
        return datetime.date.min
    return _noninf_date(s)


def _noninf_date(s):
    n, y, m, d, _ = _parse_date(s)
    if n != 3:
        raise errors.DataError("unable to parse date")
    return datetime.date(y, m, d)


def _noninf_timestamp(s):
    n, y, m, d, rest = _parse_date(s)
    if n != 3:
        raise errors.DataError("unable to parse date")
    hh = mm = ss = us = tz = 0
    n = 0
    if rest:
        n, hh, mm, ss, us, tz = _parse_time(rest)
        if n < 3 or n > 6:
            raise errors.DataError("unable to parse time")
    if ss > 59:
        mm += 1
        ss -= 60
    tzinfo = _tzinfo(tz) if n >= 5 else None
    return datetime.datetime(y, m, d, hh, mm, ss, us, tzinfo)


def _timestamp(s):
    if s == "infinity":
        return datetime.datetime.max
    if s == "-infinity":
        return datetime.datetime.min
    return _noninf_timestamp(s)


_UTC = datetime.timezone.utc


def _timestamptz(s):
    if s == "infinity":
        return datetime.datetime.max.replace(tzinfo=_UTC)
    if s == "-infinity":
        return datetime.datetime.min.replace(tzinfo=_UTC)
    return _noninf_timestamp(s)


def _time(s):
    n, hh, mm, ss, us, tz = _parse_time(s)
    if n < 3 or n > 6:
        raise errors.DataError("unable to parse time")
    if ss > 59:
        mm += 1
        ss -= 60
    return datetime.time(hh, mm, ss, us, _tzinfo(tz) if n >= 5 else None)


_INT_MAX = 2 ** 31 - 1


def _interval_from_usecs(s):
    return datetime.timedelta(0, 0, int(s, 0))


def _interval(s):
    """typecast_PYINTERVAL_cast: PostgreSQL's postgres, sql_standard and
    postgres_verbose styles; a month is 30 days, a year 365."""
    v = years = months = hours = minutes = micros = 0
    days = seconds = 0
    sign, denom, part = 1, 1, 0
    i, n = 0, len(s)
    while i < n:
        c = s[i]
        if c == "-":
            sign = -1
        elif "0" <= c <= "9":
            v1 = v * 10 + (ord(c) - 48)
            if v1 > _INT_MAX:
                try:
                    return _interval_from_usecs(s)
                except ValueError:
                    raise OverflowError("interval component too big") from None
            v = v1
            if part == 6 and denom <= _INT_MAX // 10:
                denom *= 10
        elif c in "ymd":
            limit = {"y": 0, "m": 1, "d": 2}[c]
            if part <= limit:
                if c == "y":
                    years = v * sign
                    part = 1
                elif c == "m":
                    months = v * sign
                    part = 2
                else:
                    days = v * sign
                    part = 3
                v, sign = 0, 1
                while i < n and s[i] != " ":
                    i += 1
                continue
        elif c == ":":
            if part <= 3:
                hours, v, part = v, 0, 4
            elif part == 4:
                minutes, v, part = v, 0, 5
        elif c == ".":
            if part == 5:
                seconds, v, part = v, 0, 6
        elif c == "P":
            raise errors.NotSupportedError("iso_8601 intervalstyle currently not supported")
        i += 1
    if part == 4:
        minutes = v
    elif part == 5:
        seconds = v
    elif part == 6:
        micros = v
        if denom < 1000000:
            while denom < 1000000:
                micros *= 10
                denom *= 10
        elif denom > 1000000:
            micros = int(round(micros / denom * 1000000.0))
    elif part == 0:
        return _interval_from_usecs(s)
    seconds += 60 * minutes + 3600 * hours
    if sign < 0:
        seconds, micros = -seconds, -micros
    days += 30 * months + 365 * years
    return datetime.timedelta(days, seconds, micros)


# ---------------------------------------------------------------- arrays

def parse_array(s, element):
    """typecast_GENERIC_ARRAY_cast: an array literal as (nested) lists,
    each element through `element`; unquoted NULL is None."""
    if s.startswith("["):
        depth, i = 1, 1
        while depth > 0 and i < len(s):
            if s[i] == "[":
                depth += 1
            elif s[i] == "]":
                depth -= 1
            i += 1
        if i < len(s) and s[i] == "=":
            s = s[i + 1:]
    if not s.startswith("{"):
        raise errors.DataError("array does not start with '{'")
    if len(s) == 1:
        raise errors.DataError("malformed array: '{'")
    body = s[1:-1]
    result = []
    current = result
    stack = []
    pos, n = 0, len(body)
    while True:
        if pos == n:
            break
        c = body[pos]
        if c == "{":
            pos += 1
            sub = []
            current.append(sub)
            if len(stack) == 16:
                raise errors.DataError("excessive array dimensions")
            stack.append(current)
            current = sub
            continue
        if c == "}":
            pos += 1
            if pos < n and body[pos] == ",":
                pos += 1
            if not stack:
                raise errors.DataError("unbalanced braces in array")
            current = stack.pop()
            continue
        quotes = backslash = escaped = False
        q = 0
        i = pos
        while i < n:
            ch = body[i]
            if ch == '"':
                if not backslash:
                    q += 1
                else:
                    backslash = False
            elif ch == "\\":
                escaped = True
                backslash = not backslash
            elif ch in "},":
                if not backslash and q % 2 == 0:
                    break
            else:
                backslash = False
            i += 1
        start, length = pos, i - pos
        if body[pos:pos + 1] == '"':
            start += 1
            length -= 2
            quotes = True
        token = body[start:start + length] if length > 0 else ""
        if escaped:
            out, j = [], 0
            while j < len(token):
                if token[j] == "\\":
                    j += 1
                if j < len(token):
                    out.append(token[j])
                j += 1
            token = "".join(out)
        pos = i
        if pos < n and body[pos] == ",":
            pos += 1
        if not quotes and len(token) == 4 and token.lower() == "null":
            current.append(None)
        else:
            current.append(element(token))
    return result


def _array_of(element):
    return lambda s: parse_array(s, element)


def _str(s):
    return s


# ---------------------------------------------------------------- by OID

_SCALARS = {
    # NUMBER, then INTEGER/LONGINTEGER/FLOAT/DECIMAL override it
    20: _int, 21: _int, 23: _int, 26: _int,
    700: _float, 701: _float,
    1700: decimal.Decimal,
    16: _bool,
    1114: _timestamp, 1184: _timestamptz,
    1083: _time, 1266: _time,
    1082: _date,
    704: _interval, 1186: _interval,
    17: _bytea,
    114: _json, 3802: _json,
}

# array OID -> element caster (typecast_builtins.c, plus JSONARRAY/JSONBARRAY)
_ARRAYS = {
    1016: _int, 1005: _int, 1006: _int, 1007: _int,
    1021: _float, 1022: _float,
    1231: decimal.Decimal,
    1002: _str, 1003: _str, 1009: _str, 1014: _str, 1015: _str,
    1000: _bool,
    # psycopg2 compares an element with "infinity" before cutting it out of
    # the array's text, so in arrays the infinities fail as dates
    1115: _noninf_timestamp, 1185: _noninf_timestamp,
    1183: _time, 1270: _time,
    1182: _noninf_date,
    1187: _interval,
    1001: _bytea,
    1028: _int, 1013: _int,
    1041: _str, 651: _str, 1040: _str,
    199: _json, 3807: _json,
}

# ---------------------------------------------------------------- ranges
# psycopg2.extras (which the old library imported for RealDictCursor)
# registers casters for the built-in range types: psycopg2's Range objects.
# Without psycopg2 a range is its text, as psycopg2 without extras gives it.

_RANGE = re.compile(r"""
    ([(\[])
    (?: "((?:[^"]|"")*)" | ([^",]+) )?
    ,
    (?: "((?:[^"]|"")*)" | ([^")\]]+) )?
    ([)\]])
""", re.X)
_UNDOUBLE = re.compile(r'(["\\])\1')


def _range_of(class_name, element):
    try:
        import psycopg2.extras as extras
    except ImportError:
        return None
    make = getattr(extras, class_name)

    def cast(s):
        if s == "empty":
            return make(empty=True)
        m = _RANGE.match(s)
        if m is None:
            raise errors.InterfaceError("failed to parse range: '%s'" % s)
        bounds = []
        for quoted, plain in ((m.group(2), m.group(3)), (m.group(4), m.group(5))):
            text = plain if plain is not None else (
                _UNDOUBLE.sub(r"\1", quoted) if quoted is not None else None)
            bounds.append(None if text is None else element(text))
        return make(bounds[0], bounds[1], m.group(1) + m.group(6))

    return cast


# range OID -> (its array's OID, psycopg2's class, the element's caster)
_RANGES = {
    3904: (3905, "NumericRange", _int), 3926: (3927, "NumericRange", _int),
    3906: (3907, "NumericRange", decimal.Decimal), 3912: (3913, "DateRange", _date),
    3908: (3909, "DateTimeRange", _timestamp), 3910: (3911, "DateTimeTZRange", _timestamptz),
}

_CASTERS = dict(_SCALARS)
_CASTERS.update((oid, _array_of(element)) for oid, element in _ARRAYS.items())
for _oid, (_array, _class, _element) in _RANGES.items():
    _cast = _range_of(_class, _element)
    if _cast is not None:
        _CASTERS[_oid] = _cast
        _CASTERS[_array] = _array_of(_cast)


def caster(oid):
    """The function that turns the text of a non-null value of type `oid`
    into psycopg2's Python value, or None where that is the text itself."""
    return _CASTERS.get(oid)
