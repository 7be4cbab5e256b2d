"""Parameters, adapted as psycopg2 adapts them, but sent as parameters.

psycopg2 splices each value into the SQL as a typed literal: `5`, `1.5`
(numeric), `true`, `'2024-02-29'::date`, `'\\x00ff'::bytea`, a tuple as
`(a, b)` (for `IN %s`), a list as `ARRAY[a, b]` (`'{}'` when empty), and
fills `%(name)s` from a dict. The broker binds values as text parameters
(audited as keyed hashes, never part of the statement's text), so here only
the *placeholders* are rewritten: a tuple's `%s` becomes `(%s, %s)`, a list's
`ARRAY[%s, %s]`, and a value whose psycopg2 literal has a type gets that type
as a cast (`%s::int4`, `%s::numeric`, `%s::date`, ...), so PostgreSQL types
the expression as it typed psycopg2's literal. Strings, None and JSON stay
untyped, as psycopg2's quoted strings are.

The SQL is scanned as the broker scans it: `%s`, `%(name)s` and `%%` count
outside string literals, quoted identifiers and comments only.
"""

import datetime
import decimal
import math
import re
import uuid

from .errors import ProgrammingError

__all__ = ["adapt"]

_INT4 = (-(2 ** 31), 2 ** 31 - 1)
_INT8 = (-(2 ** 63), 2 ** 63 - 1)


class _Param:
    """One value for the broker and the placeholder it takes in the SQL."""

    __slots__ = ("sql", "values")

    def __init__(self, sql, values):
        self.sql = sql
        self.values = values


def _scalar(placeholder, value, cast=None):
    return _Param(placeholder + ("::" + cast if cast else ""), [value])


def _adapt(value):
    """(placeholder SQL, [JSON values]) for one Python value."""
    # bool before int: bool is a subclass of int
    if value is None:
        return _Param("%s", [None])
    if isinstance(value, bool):
        return _scalar("%s", value, "bool")
    if isinstance(value, int):
        if _INT4[0] <= value <= _INT4[1]:
            cast = "int4"
        elif _INT8[0] <= value <= _INT8[1]:
            cast = "int8"
        else:
            cast = "numeric"
        return _scalar("%s", str(int(value)), cast)
    if isinstance(value, float):
        # psycopg2: repr() as a numeric literal; NaN and the infinities as float
        if math.isnan(value):
            return _scalar("%s", "NaN", "float8")
        if math.isinf(value):
            return _scalar("%s", "Infinity" if value > 0 else "-Infinity", "float8")
        return _scalar("%s", repr(float(value)), "numeric")
    if isinstance(value, decimal.Decimal):
        # psycopg2 sends every non-finite Decimal, Infinity too, as 'NaN'::numeric
        return _scalar("%s", str(value) if value.is_finite() else "NaN", "numeric")
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError("A string literal cannot contain NUL (0x00) characters.")
        return _Param("%s", [value])
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _scalar("%s", "\\x" + bytes(value).hex(), "bytea")
    if isinstance(value, datetime.datetime):
        return _scalar("%s", value.isoformat(),
                       "timestamp" if value.tzinfo is None else "timestamptz")
    if isinstance(value, datetime.date):
        return _scalar("%s", value.isoformat(), "date")
    if isinstance(value, datetime.time):
        return _scalar("%s", value.isoformat(), "time" if value.tzinfo is None else "timetz")
    if isinstance(value, datetime.timedelta):
        return _scalar("%s", "%d days %d.%06d seconds"
                       % (value.days, value.seconds, value.microseconds), "interval")
    if isinstance(value, uuid.UUID):
        # psycopg2 needs extras.register_uuid() for this; it then sends ::uuid
        return _scalar("%s", str(value), "uuid")
    if isinstance(value, tuple):
        parts = [_adapt(v) for v in value]
        return _Param("(%s)" % ", ".join(p.sql for p in parts),
                      [v for p in parts for v in p.values])
    if isinstance(value, list):
        if not value:
            return _Param("'{}'", [])
        parts = [_adapt(v) for v in value]
        return _Param("ARRAY[%s]" % ", ".join(p.sql for p in parts),
                      [v for p in parts for v in p.values])
    if isinstance(value, dict):
        # not adaptable in psycopg2; sent as JSON text (for json/jsonb)
        return _Param("%s", [value])
    # psycopg2.extras.Json and look-alikes: the JSON text, untyped
    adapted = getattr(value, "adapted", None)
    dumps = getattr(value, "dumps", None)
    if adapted is not None and callable(dumps):
        return _Param("%s", [dumps(adapted)])
    raise ProgrammingError("can't adapt type %r" % type(value).__name__)


# What the broker's scanner skips: string literals ('..', E'..', U&'..'),
# dollar quotes, quoted identifiers and comments. Anything else is scanned
# for %s, %(name)s and %%.
_SKIP = re.compile(r"""
    (?P<estr> [eE]'(?:[^'\\]|\\.|'')*'? )
  | (?P<str> '(?:[^']|'')*'? )
  | (?P<ident> "(?:[^"]|"")*"? )
  | (?P<line> --[^\n]* )
  | (?P<dollar> \$(?P<tag>[A-Za-z_\x80-\uffff][A-Za-z_0-9\x80-\uffff]*)?\$ )
  | (?P<block> /\* )
  | (?P<pct> %(?:%|s|\((?P<name>[^)]*)\)s)? )
""", re.X | re.S)


def _placeholders(sql):
    """Yields (start, end, kind, name) for each %s / %(name)s outside
    literals, identifiers and comments; kind is 's' or 'name'."""
    pos, n = 0, len(sql)
    while pos < n:
        m = _SKIP.search(sql, pos)
        if m is None:
            return
        kind = m.lastgroup if m.lastgroup != "tag" else "dollar"
        if m.group("dollar") is not None:
            # a $n parameter is not a dollar quote
            close = sql.find(m.group("dollar"), m.end())
            pos = n if close < 0 else close + len(m.group("dollar"))
            continue
        if m.group("block") is not None:
            depth, i = 1, m.end()
            while depth and i < n:
                if sql.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif sql.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    i += 1
            pos = i
            continue
        if m.group("pct") is not None:
            text = m.group("pct")
            if text == "%s":
                yield m.start(), m.end(), "s", None
            elif m.group("name") is not None:
                yield m.start(), m.end(), "name", m.group("name")
            pos = m.end()
            continue
        del kind
        pos = m.end()


def adapt(sql, params):
    """(SQL, JSON parameter list) for `sql` with `params` (None, a sequence
    for %s, or a mapping for %(name)s), as psycopg2 would have bound them."""
    if params is None:
        return sql, []
    if isinstance(params, (str, bytes)):
        raise TypeError("params must be a list or a tuple of values for the %%s "
                        "placeholders, or a dict for %%(name)s, not %s"
                        % type(params).__name__)
    mapping = hasattr(params, "keys") and hasattr(params, "__getitem__")
    if not mapping:
        try:
            params = list(params)
        except TypeError:
            raise TypeError("params must be a list or a tuple of values for the %%s "
                            "placeholders, or a dict for %%(name)s, not %s"
                            % type(params).__name__) from None
    out, values, last, index = [], [], 0, 0
    for start, end, kind, name in _placeholders(sql):
        if mapping:
            if kind != "name":
                raise TypeError("argument formats can't be mixed")
            try:
                value = params[name]
            except KeyError:
                raise KeyError(name) from None
        else:
            if kind != "s":
                raise TypeError("argument formats can't be mixed" if params else
                                "format requires a mapping")
            if index >= len(params):
                raise IndexError("tuple index out of range")
            value = params[index]
            index += 1
        param = _adapt(value)
        out.append(sql[last:start])
        out.append(param.sql)
        values.extend(param.values)
        last = end
    if not mapping and index < len(params):
        raise TypeError("not all arguments converted during string formatting")
    out.append(sql[last:])
    return "".join(out), values
