"""The contract: ``prisma/schema.prisma`` turned into the Schema PostgreSQL must have.

Only the subset of the Prisma schema language the contract uses is understood
(see ``parse_prisma_schema``); anything else raises ValueError naming the line,
so a new construct in the contract fails loudly instead of being misread.

Spellings are those of the catalog after Prisma 6 Migrate ran its DDL on
PostgreSQL, checked against a live PostgreSQL 15 and prisma-engines' sources:

* Types: ``format_type()`` of Prisma's default native types (TEXT, INTEGER,
  BIGINT, DOUBLE PRECISION, BOOLEAN, TIMESTAMP(3), JSONB; lists add ``[]``).
* Nullability: prisma-engines' ``render_nullability`` writes NOT NULL only for
  ``ColumnArity::Required``; a scalar list is ``ColumnArity::List``, so Prisma
  writes ``"tags" TEXT[]`` and the column is nullable.
* Defaults: ``pg_get_expr()`` of what Prisma writes: ``DEFAULT false``,
  ``DEFAULT 0``, ``DEFAULT 'inactive'`` and ``DEFAULT CURRENT_TIMESTAMP`` read
  back as ``false``, ``0``, ``'inactive'::text`` and ``CURRENT_TIMESTAMP``.
  PostgreSQL labels constants that would not re-parse bare: ``-1`` reads back
  as ``'-1'::integer`` (even on a bigint or float column: the implicit cast is
  not shown), ``3000000000`` as ``'3000000000'::bigint``, ``-1.5`` as
  ``'-1.5'::numeric``.  cuid()/uuid() and @updatedAt are filled by the client:
  no database default.
* Names: psl's ``ConstraintNames``: ``<table>_pkey``, ``<table>_<cols>_key``,
  ``<table>_<cols>_idx``, ``<table>_<cols>_fkey``, the part before the suffix
  cut to 63 bytes minus the suffix.
* Referential actions: when not given, onDelete is Restrict if any referencing
  scalar (or the relation field) is required, else SetNull; onUpdate Cascade.

Indexes and foreign keys are listed sorted by name (Python string order), so a
catalog reader that sorts the same way compares with ``==``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from job.schemamodel import Column, ForeignKey, Index, Schema, Table

_PG_TYPES = {
    "String": "text",
    "Int": "integer",
    "BigInt": "bigint",
    "Float": "double precision",
    "Boolean": "boolean",
    "DateTime": "timestamp(3) without time zone",
    "Json": "jsonb",
}
_ACTIONS = {
    "Cascade": "CASCADE",
    "SetNull": "SET NULL",
    "Restrict": "RESTRICT",
    "NoAction": "NO ACTION",
    "SetDefault": "SET DEFAULT",
}
# Defaults the client computes: nothing reaches the database.
_CLIENT_DEFAULTS = frozenset({"cuid", "uuid", "nanoid", "ulid"})
_MAX_IDENTIFIER = 63  # PostgreSQL's NAMEDATALEN - 1, in bytes
_INT4 = range(-(2**31), 2**31)
_INT8 = range(-(2**63), 2**63)
_PLAIN_NUMBER = re.compile(r"-?\d+(\.\d+)?")
_TOKEN = re.compile(r"""
    \s*(?:
      (?P<comment>//.*)
    | (?P<string>"(?:[^"\\\n]|\\.)*")
    | (?P<number>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
    | (?P<name>@{0,2}[^\W\d]\w*(?:\.[^\W\d]\w*)?)
    | (?P<punct>\[\]|[()\[\]{},:?=])
    )""", re.VERBOSE)
_ESCAPES = {'"': '"', "\\": "\\", "n": "\n", "r": "\r", "t": "\t"}


# --- syntax: one line at a time ---------------------------------------------

@dataclass(frozen=True)
class _Lit:
    """A string or number literal; ``text`` is the decoded string or the number as written."""

    text: str
    is_string: bool


@dataclass(frozen=True)
class _Name:
    """A bare identifier, or a function call when ``args`` is not None."""

    name: str
    args: tuple[_Arg, ...] | None = None


@dataclass(frozen=True)
class _List:
    items: tuple[_Expr, ...]


_Expr = _Lit | _Name | _List
_Arg = tuple[str | None, _Expr]  # (argument name or None if positional, value)


@dataclass(frozen=True)
class _Attr:
    name: str  # without the @ or @@
    args: tuple[_Arg, ...]
    line: int


@dataclass
class _Field:
    name: str
    type: str
    optional: bool
    is_list: bool
    attrs: list[_Attr]
    line: int

    def attr(self, name: str) -> _Attr | None:
        return next((a for a in self.attrs if a.name == name), None)


@dataclass
class _Model:
    name: str
    line: int
    fields: list[_Field] = field(default_factory=list)
    block_attrs: list[_Attr] = field(default_factory=list)


def _fail(line: int, message: str) -> ValueError:
    return ValueError(f"line {line}: {message}")


def _tokenize(text: str, line: int) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    pos = 0
    while text[pos:].strip():
        m = _TOKEN.match(text, pos)
        if m is None:
            raise _fail(line, f"unexpected text {text[pos:].strip()!r}")
        pos = m.end()
        kind = m.lastgroup or ""
        if kind == "comment":
            break
        # PostgreSQL cuts longer identifiers to 63 bytes; constraint names built from
        # the cut names come out the same, as their own cut (59 bytes) is shorter.
        tokens.append((kind, _clip(m.group(kind)) if kind == "name" else m.group(kind)))
    return tokens


def _decode_string(raw: str, line: int) -> str:
    def unescape(m: re.Match[str]) -> str:
        if m.group(1) not in _ESCAPES:
            raise _fail(line, f"unsupported escape \\{m.group(1)} in string {raw}")
        return _ESCAPES[m.group(1)]

    return re.sub(r"\\(.)", unescape, raw[1:-1])


class _Cursor:
    """Recursive descent over one line's tokens."""

    def __init__(self, tokens: list[tuple[str, str]], line: int) -> None:
        self.tokens, self.pos, self.line = tokens, 0, line

    def peek(self, offset: int = 0) -> tuple[str, str]:
        i = self.pos + offset
        return self.tokens[i] if i < len(self.tokens) else ("end", "end of line")

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if token[0] == "end":
            raise _fail(self.line, "unexpected end of line")
        self.pos += 1
        return token

    def accept(self, text: str) -> bool:
        if self.peek() == ("punct", text):
            self.pos += 1
            return True
        return False

    def expect(self, text: str) -> None:
        if not self.accept(text):
            raise _fail(self.line, f"expected {text!r}, found {self.peek()[1]!r}")

    def at_end(self) -> bool:
        return self.pos >= len(self.tokens)

    def expr(self) -> _Expr:
        kind, text = self.take()
        if kind == "string":
            return _Lit(_decode_string(text, self.line), True)
        if kind == "number":
            return _Lit(text, False)
        if kind == "name" and not text.startswith("@"):
            return _Name(text, self.args() if self.accept("(") else None)
        if (kind, text) == ("punct", "[]"):
            return _List(())
        if (kind, text) == ("punct", "["):
            items = [self.expr()]
            while self.accept(","):
                items.append(self.expr())
            self.expect("]")
            return _List(tuple(items))
        raise _fail(self.line, f"unexpected {text!r}")

    def args(self) -> tuple[_Arg, ...]:
        """Arguments after an opening parenthesis, through the closing one."""
        args: list[_Arg] = []
        while not self.accept(")"):
            if args:
                self.expect(",")
            name = None
            if self.peek()[0] == "name" and self.peek(1) == ("punct", ":"):
                name = self.take()[1]
                self.expect(":")
            args.append((name, self.expr()))
        return tuple(args)

    def attribute(self, prefix: str) -> _Attr:
        kind, text = self.take()
        if kind != "name" or not text.startswith(prefix) or text.startswith(prefix + "@"):
            raise _fail(self.line, f"expected a {prefix}attribute, found {text!r}")
        return _Attr(text[len(prefix):], self.args() if self.accept("(") else (), self.line)


def _parse_field(cur: _Cursor) -> _Field:
    name, type_ = cur.take(), cur.take()
    if name[0] != "name" or type_[0] != "name" or "@" in name[1] + type_[1]:
        raise _fail(cur.line, f"expected a field 'name Type', found {name[1]!r} {type_[1]!r}")
    is_list, optional = cur.accept("[]"), cur.accept("?")
    attrs = []
    while not cur.at_end():
        attrs.append(cur.attribute("@"))
    return _Field(name[1], type_[1], optional, is_list, attrs, cur.line)


def _parse_models(text: str) -> list[_Model]:
    models: list[_Model] = []
    block: _Model | None = None  # the model being read
    skipping = 0  # line of an open datasource/generator block, else 0
    for line, raw in enumerate(text.splitlines(), start=1):
        tokens = _tokenize(raw, line)
        if not tokens:
            continue
        if tokens == [("punct", "}")] and (block or skipping):
            block, skipping = None, 0
        elif skipping:
            continue
        elif block is not None:
            cur = _Cursor(tokens, line)
            if tokens[0][1].startswith("@@"):
                block.block_attrs.append(cur.attribute("@@"))
                if not cur.at_end():
                    raise _fail(line, f"unexpected {cur.peek()[1]!r} after block attribute")
            else:
                block.fields.append(_parse_field(cur))
        elif len(tokens) == 3 and tokens[2] == ("punct", "{") and tokens[1][0] == "name":
            keyword, name = tokens[0][1], tokens[1][1]
            if keyword == "model":
                block = _Model(name, line)
                models.append(block)
            elif keyword in ("datasource", "generator"):
                skipping = line
            else:
                raise _fail(line, f"unsupported block {keyword!r} (only model, datasource, generator)")
        else:
            raise _fail(line, f"unexpected {raw.strip()!r} outside a block")
    if block is not None or skipping:
        raise _fail(block.line if block else skipping, "block is never closed")
    return models


# --- semantics: models to tables ---------------------------------------------

def _named_args(attr: _Attr, positional: str | None, allowed: set[str]) -> dict[str, _Expr]:
    """Arguments by name; the first may be positional. Rejects any other argument."""
    out: dict[str, _Expr] = {}
    for i, (name, value) in enumerate(attr.args):
        key = name or (positional if i == 0 else None)
        if key is None or key not in allowed or key in out:
            raise _fail(attr.line, f"unsupported argument {name or 'value'!r} of @{attr.name}")
        out[key] = value
    return out


def _names(expr: _Expr | None, line: int) -> tuple[str, ...]:
    if not isinstance(expr, _List) or not expr.items:
        raise _fail(line, "expected a non-empty list of field names")
    if not all(isinstance(i, _Name) and i.args is None for i in expr.items):
        raise _fail(line, "expected plain field names (sort, length, ops are not supported)")
    return tuple(i.name for i in expr.items if isinstance(i, _Name))


def _clip(name: str, limit: int = _MAX_IDENTIFIER) -> str:
    """``name`` cut to ``limit`` bytes on a character boundary."""
    return name.encode()[:limit].decode(errors="ignore")


def _constraint_name(parts: tuple[str, ...], suffix: str) -> str:
    # psl ConstraintNames: the body is cut so body + suffix fits in 63 bytes.
    return _clip("_".join(parts), _MAX_IDENTIFIER - len(suffix)) + suffix


def _number_default(text: str, prisma_type: str, line: int) -> str:
    if prisma_type not in ("Int", "BigInt", "Float") or not _PLAIN_NUMBER.fullmatch(text):
        raise _fail(line, f"unsupported default {text} for {prisma_type}")
    if "." in text:  # a numeric constant; PostgreSQL quotes and labels it when negative
        if prisma_type != "Float":
            raise _fail(line, f"default {text} is not an integer")
        return f"'{text}'::numeric" if text.startswith("-") else text
    value = int(text)
    if value not in (_INT4 if prisma_type == "Int" else _INT8):
        raise _fail(line, f"default {text} is out of range for {prisma_type}")
    if value in _INT4:
        return str(value) if value >= 0 else f"'{value}'::integer"
    return f"'{value}'::bigint"


def _default(f: _Field) -> str | None:
    attr = f.attr("default")
    if attr is None:
        return None
    value = _named_args(attr, "value", {"value"}).get("value")
    if f.is_list:
        raise _fail(f.line, "defaults on list fields are not supported")
    if isinstance(value, _Name) and value.args is not None:
        if value.name in _CLIENT_DEFAULTS and f.type == "String":
            return None
        if value.name == "now" and f.type == "DateTime" and not value.args:
            return "CURRENT_TIMESTAMP"
    elif isinstance(value, _Name) and value.name in ("true", "false") and f.type == "Boolean":
        return value.name
    elif isinstance(value, _Lit) and not value.is_string:
        return _number_default(value.text, f.type, f.line)
    elif isinstance(value, _Lit) and f.type == "String":
        # Prisma doubles quotes; standard_conforming_strings keeps backslashes as they are.
        return "'{}'::text".format(value.text.replace("'", "''"))
    raise _fail(f.line, f"unsupported default for {f.type} field {f.name!r}")


def _column(f: _Field) -> Column:
    for attr in f.attrs:
        if attr.name not in ("id", "unique", "default", "updatedAt"):
            raise _fail(attr.line, f"unsupported attribute @{attr.name} on field {f.name!r}")
        if attr.name != "default" and attr.args:
            raise _fail(attr.line, f"arguments of @{attr.name} are not supported")
    if f.type not in _PG_TYPES:
        raise _fail(f.line, f"unsupported type {f.type!r} of field {f.name!r}")
    if f.is_list and f.optional:
        raise _fail(f.line, "a list cannot be optional")
    # Lists are ColumnArity::List, which Prisma renders without NOT NULL.
    return Column(f.name, _PG_TYPES[f.type] + ("[]" if f.is_list else ""),
                  f.optional or f.is_list, _default(f))


def _indexes(model: _Model, scalars: dict[str, _Field]) -> list[Index]:
    out = []
    for f in model.fields:
        if f.name in scalars and f.attr("id"):
            out.append(Index(_constraint_name((model.name,), "_pkey"), (f.name,), True, True))
        if f.name in scalars and f.attr("unique"):
            out.append(Index(_constraint_name((model.name, f.name), "_key"), (f.name,), True, False))
    for attr in model.block_attrs:
        if attr.name not in ("id", "unique", "index"):
            raise _fail(attr.line, f"unsupported block attribute @@{attr.name}")
        allowed = {"fields"} if attr.name == "index" else {"fields", "name"}  # name: client-side only
        cols = _names(_named_args(attr, "fields", allowed).get("fields"), attr.line)
        if unknown := [c for c in cols if c not in scalars]:
            raise _fail(attr.line, f"@@{attr.name} names unknown scalar fields {unknown}")
        if attr.name == "id":
            out.append(Index(_constraint_name((model.name,), "_pkey"), cols, True, True))
        else:
            suffix = "_idx" if attr.name == "index" else "_key"
            out.append(Index(_constraint_name((model.name, *cols), suffix), cols, suffix == "_key", False))
    return out


def _foreign_key(
    model: _Model, f: _Field, scalars: dict[str, _Field], models: dict[str, _Model]
) -> ForeignKey:
    attr = f.attr("relation")
    assert attr is not None
    args = _named_args(attr, "name", {"name", "fields", "references", "onDelete", "onUpdate"})
    cols, refs = _names(args.get("fields"), f.line), _names(args.get("references"), f.line)
    if unknown := [c for c in cols if c not in scalars]:
        raise _fail(f.line, f"relation fields {unknown} are not scalar fields of {model.name}")
    target_scalars = {g.name for g in models[f.type].fields if g.type not in models}
    if len(cols) != len(refs) or any(r not in target_scalars for r in refs):
        raise _fail(f.line, f"references {list(refs)} do not match fields {list(cols)} of {f.type}")
    required = not f.optional or any(not scalars[c].optional for c in cols)
    return ForeignKey(
        _constraint_name((model.name, *cols), "_fkey"), cols, f.type, refs,
        _action(args.get("onDelete"), "Restrict" if required else "SetNull", f.line),
        _action(args.get("onUpdate"), "Cascade", f.line),
    )


def _action(expr: _Expr | None, default: str, line: int) -> str:
    if expr is None:
        return _ACTIONS[default]
    if isinstance(expr, _Name) and expr.args is None and expr.name in _ACTIONS:
        return _ACTIONS[expr.name]
    raise _fail(line, f"unknown referential action (expected one of {', '.join(_ACTIONS)})")


def _relation_field(f: _Field, model: _Model, models: dict[str, _Model]) -> bool:
    """Check a relation field; True when it carries the foreign key."""
    if any(a.name != "relation" for a in f.attrs):
        raise _fail(f.line, f"relation field {f.name!r} may only have @relation")
    if f.is_list and any(g.type == model.name and g.is_list for g in models[f.type].fields):
        raise _fail(f.line, "implicit many-to-many relations are not supported")
    attr = f.attr("relation")
    return attr is not None and any(name == "fields" for name, _ in attr.args)


def _check_unique(model: _Model, kind: str, names: list[str]) -> None:
    if repeated := sorted({n for n in names if names.count(n) > 1}):
        raise _fail(model.line, f"model {model.name!r} repeats {kind} {repeated}")


def _table(model: _Model, models: dict[str, _Model]) -> Table:
    _check_unique(model, "fields", [f.name for f in model.fields])
    scalars = {f.name: f for f in model.fields if f.type not in models}
    fks = [_foreign_key(model, f, scalars, models) for f in model.fields
           if f.type in models and _relation_field(f, model, models)]
    indexes = _indexes(model, scalars)
    _check_unique(model, "index names", [i.name for i in indexes])
    _check_unique(model, "foreign key names", [k.name for k in fks])
    return Table(
        model.name,
        tuple(_column(f) for f in scalars.values()),
        tuple(sorted(indexes, key=lambda i: i.name)),
        tuple(sorted(fks, key=lambda k: k.name)),
    )


def parse_prisma_schema(text: str) -> Schema:
    """The tables, by name, that the Prisma schema ``text`` asks PostgreSQL for."""
    models = _parse_models(text)
    by_name: dict[str, _Model] = {}
    for m in models:
        if by_name.setdefault(m.name, m) is not m:
            raise _fail(m.line, f"model {m.name!r} is declared twice")
    return {m.name: _table(m, by_name) for m in models}


def load_contract(path: Path) -> Schema:
    try:
        return parse_prisma_schema(path.read_text(encoding="utf-8"))
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from e
