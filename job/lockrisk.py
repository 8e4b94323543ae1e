"""What each statement of a migration locks, and for how long, read from its tokens alone.

Migrations run exactly as written (their checksums are the app's); this only tells, in the log and in
``plan``, which statement will block writes and why, so a team can split it before it meets a big
table. Pure: no database, and never an error: what it does not recognise is "unknown".

``parse`` cuts each file into statements (``job.sqllexer``) and ``classify`` reads each one: the table,
PostgreSQL's lock mode, and how long the lock is held, ``brief`` (a catalog change) or for work that
grows with the table (a scan, a rewrite, an index build, every row updated). What only the catalog
can settle (is a default's function volatile? does a validated CHECK prove the column NOT NULL?) is
left as a condition of the ``Effect``, which ``job.lockestimate`` settles against the live schema.

Lock modes and what each command takes follow PostgreSQL's documentation ("Explicit Locking", and the
lock level given for each form in "ALTER TABLE"), for the supported versions (12 and newer).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from job.sqllexer import OP, WORD, Statement, Token, statements, tokens

# PostgreSQL's table lock modes, weakest first, and what each keeps other sessions from doing.
LOCK_MODES = ("ACCESS SHARE", "ROW SHARE", "ROW EXCLUSIVE", "SHARE UPDATE EXCLUSIVE", "SHARE",
              "SHARE ROW EXCLUSIVE", "EXCLUSIVE", "ACCESS EXCLUSIVE")
ROW_EXCLUSIVE, SHARE_UPDATE_EXCLUSIVE, SHARE, SHARE_ROW_EXCLUSIVE, ACCESS_EXCLUSIVE = (
    "ROW EXCLUSIVE", "SHARE UPDATE EXCLUSIVE", "SHARE", "SHARE ROW EXCLUSIVE", "ACCESS EXCLUSIVE")
NOTHING, WRITES, READS_AND_WRITES, UNKNOWN = "nothing", "writes", "reads and writes", "unknown"
BLOCKED = dict(zip(LOCK_MODES, (NOTHING,) * 4 + (WRITES,) * 3 + (READS_AND_WRITES,), strict=True))
BLOCK_ORDER = (NOTHING, WRITES, READS_AND_WRITES)

# How long the lock is held, shortest first. Only work that grows with the table makes a lock dangerous.
BRIEF = "brief"  # a catalog change
HELD = "held until the migration commits"  # LOCK TABLE
SOME_ROWS = "touches the rows its WHERE selects"
SCAN = "scans the table"
EVERY_ROW = "touches every row"
BUILD = "builds an index"
REWRITE = "rewrites the table"
DURATIONS = (BRIEF, HELD, SOME_ROWS, SCAN, EVERY_ROW, BUILD, REWRITE)
GROWS = frozenset({SCAN, EVERY_ROW, BUILD, REWRITE})

_INDEX_ADVICE = ("use CREATE INDEX CONCURRENTLY, alone in its own migration (it cannot run in a"
                 " transaction)")
_REINDEX_ADVICE = "use REINDEX ... CONCURRENTLY, alone in its own migration"
_NOT_VALID_ADVICE = ("add it NOT VALID, then VALIDATE CONSTRAINT in a later migration (that scan blocks"
                     " no writes)")
_NOT_NULL_ADVICE = ("add CHECK (column IS NOT NULL) NOT VALID, VALIDATE CONSTRAINT it in a later"
                    " migration, then SET NOT NULL skips the scan")
DEFAULT_ADVICE = ("add the column without that default, backfill it in batches outside the migration,"
                  " then set the default")
_TYPE_ADVICE = ("add a new column, backfill it in batches and switch over; or make a change that needs no"
                " rewrite (varchar(n) to text or to a wider varchar, numeric to a wider precision)")
_UNIQUE_ADVICE = ("CREATE UNIQUE INDEX CONCURRENTLY in its own migration, then ADD CONSTRAINT ... USING"
                  " INDEX")
_BATCH_ADVICE = "backfill in batches outside the migration, so that no transaction holds every row"
_REWRITE_ADVICE = "run it in a maintenance window (or rebuild the table online, e.g. with pg_repack)"
_COLUMN_CONSTRAINT_ADVICE = ("add the column alone, then the constraint NOT VALID, validated in a later"
                             " migration")

# SQL's own forms that are written like calls but are no functions of pg_proc (grammar, not volatility).
_NOT_CALLS = frozenset({
    "AND", "OR", "NOT", "IN", "IS", "LIKE", "ILIKE", "SIMILAR", "BETWEEN", "ANY", "ALL", "SOME", "EXISTS",
    "ARRAY", "ROW", "CAST", "COALESCE", "NULLIF", "GREATEST", "LEAST", "EXTRACT", "POSITION", "SUBSTRING",
    "TRIM", "OVERLAY", "NORMALIZE", "TREAT", "COLLATION", "GROUPING", "CURRENT_DATE", "CURRENT_TIME",
    "CURRENT_TIMESTAMP", "LOCALTIME", "LOCALTIMESTAMP", "CASE", "WHEN", "THEN", "ELSE", "VALUES", "SELECT",
    "XMLCONCAT", "XMLELEMENT", "XMLEXISTS", "XMLFOREST", "XMLPARSE", "XMLPI", "XMLROOT", "XMLSERIALIZE"})
# Words that may follow a type's name inside that type (double precision, timestamp(3) with time zone).
_TYPE_TAIL = frozenset({"PRECISION", "VARYING", "WITH", "WITHOUT", "TIME", "ZONE", "YEAR", "MONTH", "DAY",
                        "HOUR", "MINUTE", "SECOND", "TO"})
_COLUMN_CLAUSES = frozenset({"CONSTRAINT", "DEFAULT", "NOT", "NULL", "CHECK", "UNIQUE", "PRIMARY",
                             "REFERENCES", "GENERATED", "COLLATE", "DEFERRABLE", "INITIALLY"})
_SERIAL = frozenset({"serial", "serial4", "bigserial", "serial8", "smallserial", "serial2"})

# Commands that lock no existing table's rows (what a SELECT's functions do is not looked into).
_NO_TABLE = frozenset({"BEGIN", "START", "COMMIT", "END", "ROLLBACK", "ABORT", "SAVEPOINT", "RELEASE",
                       "SET", "RESET", "SHOW", "COMMENT", "GRANT", "REVOKE", "SELECT", "VALUES", "NOTIFY",
                       "LISTEN", "UNLISTEN", "DISCARD", "SECURITY"})
_NO_TABLE_OBJECTS = frozenset({"TYPE", "SCHEMA", "EXTENSION", "SEQUENCE", "FUNCTION", "PROCEDURE", "VIEW",
                               "MATERIALIZED", "RECURSIVE", "DOMAIN", "ROLE", "USER", "COLLATION",
                               "AGGREGATE", "OPERATOR", "CAST", "DEFAULT"})
_UNKNOWN_WHY = {"DO": "a DO block: what its code does is not estimated",
                "CALL": "a procedure call: what it does is not estimated",
                "WITH": "a statement after WITH: not estimated"}

# Kinds of Change.
CREATED, DROPPED, RENAMED, TRUNCATED, INDEXED, CHECKED, VALIDATED = (
    "created", "dropped", "renamed", "truncated", "indexed", "checked", "validated")


@dataclass(frozen=True)
class Effect:
    """The lock a statement (or one action of an ALTER TABLE) takes on one table, read from its tokens
    alone. The conditions at the end are settled against the catalog by ``job.lockestimate``."""

    table: str  # as PostgreSQL folds it; "*": every table of the schema
    lock: str
    duration: str
    reason: str
    advice: str = ""
    blocks: str = ""  # "": what the lock mode blocks (row locks block more than their ROW EXCLUSIVE)
    also_locks: tuple[str, ...] = ()  # held in the same mode as long (the table a foreign key references)
    on_index: bool = False  # ``table`` names an index: its table comes from the catalog
    calls: frozenset[str] = frozenset()  # a new column's default calls these: a rewrite if one is volatile
    not_null: str = ""  # SET NOT NULL of this column: no scan when a validated CHECK proves it
    retype: tuple[str, str] | None = None  # (column, new type): no rewrite when binary-coercible
    index_if_missing: str = ""  # CREATE INDEX IF NOT EXISTS: nothing when a relation of this name exists
    column_if_missing: str = ""  # ADD COLUMN IF NOT EXISTS: nothing when the table has this column


@dataclass(frozen=True)
class Change:
    """What a statement changes that the estimates of the statements after it depend on."""

    kind: str  # CREATED, DROPPED, RENAMED, TRUNCATED, INDEXED, CHECKED or VALIDATED
    table: str
    name: str = ""  # the new name (RENAMED), the index (INDEXED), the constraint (CHECKED, VALIDATED)
    column: str = ""  # the column a CHECK proves NOT NULL (CHECKED)
    flag: bool = False  # CREATED: with IF NOT EXISTS; CHECKED: validated at once (not NOT VALID)


@dataclass(frozen=True)
class Classified:
    effects: tuple[Effect, ...] = ()
    changes: tuple[Change, ...] = ()
    note: str = ""  # what it is when it locks no existing table, or why it is not understood
    understood: bool = True


@dataclass(frozen=True)
class Parsed:
    migration: str
    statement: Statement
    classified: Classified


def parse(scripts: Iterable[tuple[str, str]]) -> tuple[Parsed, ...]:
    """Each (migration, SQL) cut into statements, each classified."""
    return tuple(Parsed(name, s, classify(s)) for name, text in scripts for s in statements(text))


def calls(parsed: Iterable[Parsed]) -> frozenset[str]:
    """The functions new columns' defaults call: their volatility decides whether the table is rewritten."""
    return frozenset(f for p in parsed for e in p.classified.effects for f in e.calls)


# --- classification: one statement, from its tokens --------------------------------------------------


class _Reader:
    """A cursor over tokens that never raises: at the end every question is answered no."""

    def __init__(self, toks: Sequence[Token]) -> None:
        self.tokens, self.at = toks, 0

    @property
    def next(self) -> Token | None:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def peek(self, *words: str) -> bool:
        ahead = self.tokens[self.at:self.at + len(words)]
        return len(ahead) == len(words) and all(t.is_(w) for t, w in zip(ahead, words, strict=True))

    def take(self, *words: str) -> bool:
        if self.peek(*words):
            self.at += len(words)
            return True
        return False

    def take_any(self, *words: str) -> str:
        """The next keyword, consumed, if it is one of ``words``; else ''."""
        token = self.next
        if token is not None and token.is_(*words):
            self.at += 1
            return token.text.upper()
        return ""

    def take_op(self, op: str) -> bool:
        if self.next is not None and self.next.kind == OP and self.next.text == op:
            self.at += 1
            return True
        return False

    def name(self) -> str | None:
        """A name, maybe schema-qualified: its last part, as PostgreSQL folds it."""
        token = self.next
        if token is None or token.name is None:
            return None
        found, self.at = token.name, self.at + 1
        while self.at + 1 < len(self.tokens) and self.tokens[self.at].text == "." \
                and (part := self.tokens[self.at + 1].name) is not None:
            found, self.at = part, self.at + 2
        return found

    def names(self) -> list[str]:
        """``[ONLY] name [*] [, ...]``: the names of a list of tables (or indexes)."""
        found: list[str] = []
        while True:
            self.take("ONLY")
            name = self.name()
            if name is None:
                return found
            found.append(name)
            self.take_op("*")
            if not self.take_op(","):
                return found

    def group(self) -> tuple[Token, ...]:
        """The tokens inside the parenthesized group that starts here (consumed); () when none does."""
        if not (self.next is not None and self.next.text == "("):
            return ()
        end = _group_end(self.tokens, self.at)
        inside, self.at = tuple(self.tokens[self.at + 1:end - 1]), end
        return inside

    def rest(self) -> tuple[Token, ...]:
        return tuple(self.tokens[self.at:])


def _group_end(toks: Sequence[Token], at: int) -> int:
    """Just past the bracket closing the one at ``at``."""
    depth = 0
    for i in range(at, len(toks)):
        if toks[i].kind == OP and toks[i].text in "([":
            depth += 1
        elif toks[i].kind == OP and toks[i].text in ")]":
            depth -= 1
            if depth == 0:
                return i + 1
    return len(toks)


def _top(toks: Sequence[Token]) -> list[int]:
    """Indexes of the tokens outside every bracket."""
    found, depth = [], 0
    for i, t in enumerate(toks):
        if t.kind == OP and t.text in ")]":
            depth -= 1
        if depth <= 0:
            found.append(i)
        if t.kind == OP and t.text in "([":
            depth += 1
    return found


def _split(toks: Sequence[Token], *, comma: bool = True, word: str = "") -> list[tuple[Token, ...]]:
    """Split at top-level commas (or at a top-level keyword)."""
    parts: list[tuple[Token, ...]] = []
    start = 0
    for i in _top(toks):
        t = toks[i]
        if (word and t.is_(word)) or (not word and comma and t.kind == OP and t.text == ","):
            parts.append(tuple(toks[start:i]))
            start = i + 1
    parts.append(tuple(toks[start:]))
    return [p for p in parts if p]


def _top_has(toks: Sequence[Token], *words: str) -> bool:
    """These keywords, in a row, outside every bracket."""
    top = _top(toks)
    return any(all(j < len(toks) and toks[j].is_(w) for j, w in zip(range(i, i + len(words)), words,
                                                                   strict=True))
               for i in top)


def _after(toks: Sequence[Token], word: str) -> str | None:
    """The name right after the first top-level ``word``."""
    for i in _top(toks):
        if toks[i].is_(word):
            return _Reader(toks[i + 1:]).name()
    return None


def _unknown(why: str) -> Classified:
    return Classified(note=why, understood=False)


def _one(effect: Effect, *changes: Change) -> Classified:
    return Classified((effect,), changes)


def classify(statement: Statement) -> Classified:
    """What one statement locks, from its tokens alone (no catalog)."""
    r = _Reader(statement.tokens)
    first = r.next.text.upper() if r.next is not None else ""
    if r.take("CREATE"):
        return _create(r)
    if r.take("ALTER"):
        return _alter(r)
    if r.take("DROP"):
        return _drop(r)
    handler = _COMMANDS.get(first)
    if handler is not None:
        r.take(first)
        return handler(r)
    if first in _NO_TABLE:
        return Classified(note="locks no table's rows")
    return _unknown(_UNKNOWN_WHY.get(first, "not a statement this estimate knows"))


def _create(r: _Reader) -> Classified:
    r.take("OR", "REPLACE")
    unique = r.take("UNIQUE")
    if r.take("INDEX"):
        return _create_index(r, unique)
    r.take_any("GLOBAL", "LOCAL")
    temporary = r.take_any("TEMPORARY", "TEMP")
    r.take("UNLOGGED")
    if r.take("TABLE"):
        if_not_exists = r.take("IF", "NOT", "EXISTS")
        table = r.name()
        if table is None:
            return _unknown("a CREATE TABLE form this estimate does not know")
        if temporary:
            return Classified(note="creates a temporary table")
        return Classified(changes=(Change(CREATED, table, flag=if_not_exists),),
                          note=f'creates table "{table}"')
    r.take("CONSTRAINT")
    if r.take("TRIGGER"):
        table = _after(r.rest(), "ON")
        if table is None:
            return _unknown("a trigger on a table not read")
        return _one(Effect(table, SHARE_ROW_EXCLUSIVE, BRIEF, "creates a trigger"))
    kind = r.take_any(*_NO_TABLE_OBJECTS)
    if kind:
        return Classified(note=f"creates a {kind.lower()}: locks no table's rows")
    return _unknown("not a statement this estimate knows")


def _create_index(r: _Reader, unique: bool) -> Classified:
    """CREATE [UNIQUE] INDEX [CONCURRENTLY] [[IF NOT EXISTS] name] ON [ONLY] table ..."""
    concurrently = r.take("CONCURRENTLY")
    if_not_exists = r.take("IF", "NOT", "EXISTS")
    index = r.name() if if_not_exists or not r.peek("ON") else None
    if not r.take("ON"):
        return _unknown("an index on a table not read")
    only = r.take("ONLY")
    table = r.name()
    if table is None:
        return _unknown("an index on a table not read")
    kind = "a unique index" if unique else "an index"
    changes = (Change(INDEXED, table, name=index),) if index else ()
    missing = index if if_not_exists and index else ""
    if only:
        effect = Effect(table, SHARE, BRIEF, f"creates {kind} on the partitioned table only (an invalid"
                        " shell until each partition's index is attached)", index_if_missing=missing)
    elif concurrently:
        effect = Effect(table, SHARE_UPDATE_EXCLUSIVE, BUILD, f"builds {kind} concurrently: reads and"
                        " writes go on", index_if_missing=missing)
    else:
        effect = Effect(table, SHARE, BUILD, f"builds {kind} without CONCURRENTLY: writes wait for the"
                        " whole build", _INDEX_ADVICE, index_if_missing=missing)
    return Classified((effect,), changes)


def _alter(r: _Reader) -> Classified:
    if r.take("TABLE"):
        return _alter_table(r)
    if r.take("INDEX"):
        r.take("IF", "EXISTS")
        index = r.name()
        if index is not None and r.peek("RENAME"):
            return _one(Effect(index, SHARE_UPDATE_EXCLUSIVE, BRIEF, "renames an index", on_index=True))
        return _unknown("an ALTER INDEX form this estimate does not know")
    kind = r.take_any(*_NO_TABLE_OBJECTS)
    if kind:
        return Classified(note=f"alters a {kind.lower()}: locks no table's rows")
    return _unknown("not a statement this estimate knows")


def _alter_table(r: _Reader) -> Classified:
    """ALTER TABLE [IF EXISTS] [ONLY] name [*] action [, ...] (and the forms that take one action)."""
    r.take("IF", "EXISTS")
    r.take("ONLY")
    table = r.name()
    if table is None:
        return _unknown("an ALTER TABLE form this estimate does not know")
    r.take_op("*")
    if r.take("RENAME", "TO"):
        new = r.name()
        renamed = (Change(RENAMED, table, name=new),) if new else ()
        return Classified((Effect(table, ACCESS_EXCLUSIVE, BRIEF, "renames the table"),), renamed)
    if r.take("RENAME"):
        return _one(Effect(table, ACCESS_EXCLUSIVE, BRIEF, "renames a column or a constraint"))
    if r.take("SET", "SCHEMA"):
        return _one(Effect(table, ACCESS_EXCLUSIVE, BRIEF, "moves the table to another schema"),
                    Change(DROPPED, table))
    if r.take("ATTACH", "PARTITION"):
        part = r.name()
        parent = Effect(table, SHARE_UPDATE_EXCLUSIVE, BRIEF, "attaches a partition")
        if part is None:
            return _one(parent)
        scanned = Effect(part, ACCESS_EXCLUSIVE, SCAN, "the partition is scanned to prove its bound, unless a"
                         " validated CHECK implies it", "first add a CHECK matching the bound, validated")
        return Classified((parent, scanned))
    if r.take("DETACH", "PARTITION"):
        r.name()
        lock = SHARE_UPDATE_EXCLUSIVE if r.take("CONCURRENTLY") else ACCESS_EXCLUSIVE
        return _one(Effect(table, lock, BRIEF, "detaches a partition"))
    effects: list[Effect] = []
    changes: list[Change] = []
    for action in _split(r.rest()):
        effect, more = _action(table, action)
        effects.append(effect)
        changes += more
    return Classified(tuple(effects), tuple(changes))


def _action(table: str, action: Sequence[Token]) -> tuple[Effect, list[Change]]:
    """One action of an ALTER TABLE and its lock, as the ALTER TABLE page of the manual gives it."""
    a = _Reader(action)
    if a.take("ADD"):
        if a.next is not None and a.next.is_("CONSTRAINT", "CHECK", "UNIQUE", "PRIMARY", "FOREIGN",
                                             "EXCLUDE"):
            return _add_constraint(table, a)
        return _add_column(table, a), []
    if a.take("DROP", "CONSTRAINT"):
        return Effect(table, ACCESS_EXCLUSIVE, BRIEF, "drops a constraint"), []
    if a.take("DROP"):
        return Effect(table, ACCESS_EXCLUSIVE, BRIEF, "drops a column"), []
    if a.take("ALTER", "CONSTRAINT"):
        return Effect(table, ACCESS_EXCLUSIVE, BRIEF, "alters a constraint"), []
    if a.take("ALTER"):
        a.take("COLUMN")
        return _alter_column(table, a.name() or "?", a), []
    if a.take("VALIDATE", "CONSTRAINT"):
        name = a.name() or ""
        return (Effect(table, SHARE_UPDATE_EXCLUSIVE, SCAN, "validates a constraint: it scans the table while"
                       " reads and writes go on"), [Change(VALIDATED, table, name=name)])
    if a.take("SET"):
        if a.take_any("TABLESPACE", "LOGGED", "UNLOGGED") or a.take("ACCESS", "METHOD"):
            return Effect(table, ACCESS_EXCLUSIVE, REWRITE, "moves or changes the table's storage: every row"
                          " is copied", _REWRITE_ADVICE), []
        if a.group() or a.take("WITHOUT", "CLUSTER"):
            return Effect(table, SHARE_UPDATE_EXCLUSIVE, BRIEF, "changes a storage parameter"), []
    if a.take("RESET") or a.take("CLUSTER", "ON"):
        return Effect(table, SHARE_UPDATE_EXCLUSIVE, BRIEF, "changes a storage parameter"), []
    if a.take_any("ENABLE", "DISABLE"):
        a.take_any("REPLICA", "ALWAYS")
        if a.take("TRIGGER"):
            return Effect(table, SHARE_ROW_EXCLUSIVE, BRIEF, "enables or disables a trigger"), []
    words = " ".join(t.text.upper() for t in action[:2])
    return Effect(table, ACCESS_EXCLUSIVE, BRIEF, f"{words}: a catalog change"), []


def _add_column(table: str, a: _Reader) -> Effect:
    """ADD [COLUMN] [IF NOT EXISTS] name type [constraints]: brief since PostgreSQL 11, unless each row
    needs a value of its own (a volatile default, a serial, an identity or a stored generated column),
    or a constraint to check."""
    a.take("COLUMN")
    if_not_exists = a.take("IF", "NOT", "EXISTS")
    column = a.name() or "?"
    type_tokens, clauses = _column_definition(a.rest())
    type_name = type_tokens[0].name if type_tokens else None
    duration, reasons, advice = BRIEF, [f'adds column "{column}"'], ""
    found_calls: frozenset[str] = frozenset()
    also: tuple[str, ...] = ()
    if type_name in _SERIAL:
        duration, advice = REWRITE, DEFAULT_ADVICE
        reasons.append(f"{type_name} gives every row a value from a sequence: the table is rewritten")
    for keyword, body in clauses:
        if keyword == "DEFAULT":
            found_calls = _calls(body)
        elif keyword == "GENERATED":
            duration, advice = REWRITE, DEFAULT_ADVICE
            kind = "an identity" if _top_has(body, "IDENTITY") else "a stored generated column"
            reasons.append(f"{kind} gives every row a value: the table is rewritten")
        elif keyword in ("UNIQUE", "PRIMARY"):
            duration, advice = longest(duration, BUILD), advice or _UNIQUE_ADVICE
            reasons.append("its index is built")
        elif keyword in ("CHECK", "REFERENCES"):
            duration, advice = longest(duration, SCAN), advice or _COLUMN_CONSTRAINT_ADVICE
            reasons.append("its constraint is checked against every row")
            if keyword == "REFERENCES" and (ref := _Reader(body).name()) is not None:
                also = (ref,)
    return Effect(table, ACCESS_EXCLUSIVE, duration, "; ".join(reasons), advice, also_locks=also,
                  calls=found_calls, column_if_missing=column if if_not_exists else "")


Clause = tuple[str, tuple[Token, ...]]  # DEFAULT, NOT, NULL, CHECK... and the tokens after it


def _column_definition(toks: Sequence[Token]) -> tuple[tuple[Token, ...], list[Clause]]:
    """A column definition's type, and its clauses (DEFAULT, NOT NULL, CHECK...) with their tokens."""
    top = set(_top(toks))
    type_end = next((i for i in sorted(top) if toks[i].is_(*_COLUMN_CLAUSES)), len(toks))
    clauses: list[tuple[str, list[Token]]] = []
    for i in range(type_end, len(toks)):
        t = toks[i]
        # GENERATED BY DEFAULT AS IDENTITY: that DEFAULT belongs to GENERATED
        starts = i in top and t.is_(*_COLUMN_CLAUSES) and not (t.is_("DEFAULT") and toks[i - 1].is_("BY"))
        if starts and not (clauses and clauses[-1][0] == "DEFAULT" and not clauses[-1][1]):
            clauses.append((t.text.upper(), []))  # DEFAULT NULL: NULL is the default, not a clause
        else:
            clauses[-1][1].append(t)
    return tuple(toks[:type_end]), [(k, tuple(body)) for k, body in clauses]


def _calls(expr: Sequence[Token]) -> frozenset[str]:
    """The functions an expression calls, by name (a type after ``::`` or ``AS`` is no call)."""
    found = set()
    i = 0
    while i < len(expr):
        t = expr[i]
        if t.text == "::" or t.is_("AS"):
            i = _type_end(expr, i + 1)
            continue
        name = t.name
        if name is not None and i + 1 < len(expr) and expr[i + 1].text == "(" and not t.is_(*_NOT_CALLS):
            found.add(name)
        i += 1
    return frozenset(found)


def _type_end(toks: Sequence[Token], at: int) -> int:
    """Just past the type name that starts at ``at``: its name, modifiers, array brackets, and the
    words of a multi-word type."""
    r = _Reader(toks)
    r.at = at
    if r.name() is None:
        return at
    while r.next is not None:
        if r.next.text in ("(", "["):
            r.at = _group_end(toks, r.at)
        elif not r.take_any(*_TYPE_TAIL):
            break
    return r.at


def _add_constraint(table: str, a: _Reader) -> tuple[Effect, list[Change]]:
    name = (a.name() or "") if a.take("CONSTRAINT") else ""
    body = a.rest()
    not_valid = _top_has(body, "NOT", "VALID")
    kind = a.take_any("CHECK", "UNIQUE", "PRIMARY", "FOREIGN", "EXCLUDE")
    if kind == "CHECK":
        changes = [Change(CHECKED, table, name=name, column=c, flag=not not_valid)
                   for c in sorted(not_null_columns(a.group()))]
        if not_valid:
            return Effect(table, ACCESS_EXCLUSIVE, BRIEF, "adds a CHECK NOT VALID: existing rows are not"
                          " checked"), changes
        return Effect(table, ACCESS_EXCLUSIVE, SCAN, "adds a CHECK: every row is checked",
                      _NOT_VALID_ADVICE), changes
    if kind in ("UNIQUE", "PRIMARY"):
        label = "a primary key" if kind == "PRIMARY" else "a unique constraint"
        if _top_has(body, "USING", "INDEX"):
            return Effect(table, ACCESS_EXCLUSIVE, BRIEF, f"adds {label} on an index already built"), []
        return Effect(table, ACCESS_EXCLUSIVE, BUILD, f"adds {label}: its index is built",
                      _UNIQUE_ADVICE), []
    if kind == "FOREIGN":
        ref = _after(body, "REFERENCES")
        also = (ref,) if ref and ref != table else ()
        target = f' to "{ref}"' if ref else ""
        if not_valid:
            return Effect(table, SHARE_ROW_EXCLUSIVE, BRIEF, f"adds a foreign key{target} NOT VALID: existing"
                          " rows are not checked", also_locks=also), []
        return Effect(table, SHARE_ROW_EXCLUSIVE, SCAN, f"adds a foreign key{target}: every row is checked",
                      _NOT_VALID_ADVICE, also_locks=also), []
    if kind == "EXCLUDE":
        return Effect(table, ACCESS_EXCLUSIVE, BUILD, "adds an exclusion constraint: its index is built"), []
    return Effect(table, ACCESS_EXCLUSIVE, BRIEF, "adds a constraint"), []


def _alter_column(table: str, column: str, a: _Reader) -> Effect:
    if a.take("SET", "DATA", "TYPE") or a.take("TYPE"):
        rest = a.rest()
        end = next((i for i in _top(rest) if rest[i].is_("COLLATE", "USING")), len(rest))
        new_type = _type_text(rest[:end])
        using = _top_has(rest, "USING")
        return Effect(table, ACCESS_EXCLUSIVE, REWRITE, f'changes the type of "{column}" to {new_type}: the'
                      " table and its indexes are rewritten", _TYPE_ADVICE,
                      retype=None if using else (column, new_type))
    if a.take("SET", "NOT", "NULL"):
        return Effect(table, ACCESS_EXCLUSIVE, SCAN, f'sets "{column}" NOT NULL: every row is checked',
                      _NOT_NULL_ADVICE, not_null=column)
    if a.take("SET", "DEFAULT") or a.take("DROP", "DEFAULT"):
        return Effect(table, ACCESS_EXCLUSIVE, BRIEF, f'changes the default of "{column}" (rows keep their'
                      " values)")
    if a.take("SET", "STATISTICS") or a.take("RESET") or (a.take("SET") and a.group()):
        return Effect(table, SHARE_UPDATE_EXCLUSIVE, BRIEF, f'changes a setting of column "{column}"')
    return Effect(table, ACCESS_EXCLUSIVE, BRIEF, f'alters column "{column}": a catalog change')


def _type_text(toks: Sequence[Token]) -> str:
    """A type as written, lower case and spaced as PostgreSQL prints it: ``varchar(255)``."""
    out = ""
    for t in toks:
        text = t.text if t.kind != WORD else t.text.lower()
        glue = "" if not out or text in "(),[]" or out[-1] in "([," else " "
        out += glue + text
    return out


def not_null_columns(expr: Sequence[Token]) -> set[str]:
    """The columns a CHECK expression proves NOT NULL: ``col IS NOT NULL``, alone or ANDed at its top
    (what PostgreSQL accepts to skip SET NOT NULL's scan)."""
    found = set()
    for conjunct in _split(_unwrap(expr), word="AND"):
        part = _unwrap(conjunct)
        if len(part) == 4 and part[0].name and part[1].is_("IS") and part[2].is_("NOT") \
                and part[3].is_("NULL"):
            found.add(part[0].name)
    return found


def _unwrap(toks: Sequence[Token]) -> tuple[Token, ...]:
    toks = tuple(toks)
    while toks and toks[0].text == "(" and _group_end(toks, 0) == len(toks):
        toks = toks[1:-1]
    return toks


def _drop(r: _Reader) -> Classified:
    if r.take("TABLE"):
        r.take("IF", "EXISTS")
        tables = r.names()
        return Classified(tuple(Effect(t, ACCESS_EXCLUSIVE, BRIEF, "drops the table") for t in tables),
                          tuple(Change(DROPPED, t) for t in tables))
    if r.take("INDEX"):
        lock = SHARE_UPDATE_EXCLUSIVE if r.take("CONCURRENTLY") else ACCESS_EXCLUSIVE
        r.take("IF", "EXISTS")
        return Classified(tuple(Effect(i, lock, BRIEF, "drops an index", on_index=True) for i in r.names()))
    kind = r.take_any(*_NO_TABLE_OBJECTS)
    if kind and kind != "SCHEMA":  # DROP SCHEMA ... CASCADE may drop tables
        return Classified(note=f"drops a {kind.lower()}: locks no table's rows")
    return _unknown("not a statement this estimate knows")


def _dml(r: _Reader, verb: str) -> Classified:
    """UPDATE [ONLY] table ... / DELETE FROM [ONLY] table ...: each row it touches stays locked until the
    migration commits, so other writers of those rows wait that long."""
    r.take("FROM")
    r.take("ONLY")
    table = r.name()
    if table is None:
        return _unknown(f"{verb.upper()} of a table not read")
    if _top_has(r.rest(), "WHERE"):
        return _one(Effect(table, ROW_EXCLUSIVE, SOME_ROWS, f"{verb}s the rows its WHERE selects (how many is"
                           " not estimated), each locked until the migration commits", blocks=WRITES))
    return _one(Effect(table, ROW_EXCLUSIVE, EVERY_ROW, f"{verb}s every row, each locked until the migration"
                       " commits: other writers of those rows wait", _BATCH_ADVICE, blocks=WRITES))


def _insert(r: _Reader) -> Classified:
    r.take("INTO")
    table = r.name()
    if table is None:
        return _unknown("INSERT into a table not read")
    return _one(Effect(table, ROW_EXCLUSIVE, BRIEF, "inserts rows: blocks no reader or writer"))


def _truncate(r: _Reader) -> Classified:
    r.take("TABLE")
    tables = r.names()
    return Classified(tuple(Effect(t, ACCESS_EXCLUSIVE, BRIEF, "empties the table") for t in tables),
                      tuple(Change(TRUNCATED, t) for t in tables))


def _lock(r: _Reader) -> Classified:
    """LOCK [TABLE] [ONLY] name [*] [, ...] [IN mode MODE] [NOWAIT]: held until the migration commits."""
    r.take("TABLE")
    tables = r.names()
    mode = ACCESS_EXCLUSIVE
    if r.take("IN"):
        words = []
        while r.next is not None and not r.next.is_("MODE"):
            words.append(r.next.text.upper())
            r.at += 1
        mode = " ".join(words) if " ".join(words) in LOCK_MODES else mode
    return Classified(tuple(Effect(t, mode, HELD, f"LOCK TABLE in {mode} mode") for t in tables))


def _options(r: _Reader, option: str) -> bool:
    """Whether a parenthesized option list here, e.g. ``(FULL, ANALYZE)``, turns ``option`` on."""
    def on(value: Sequence[Token]) -> bool:
        return not value or not (value[0].is_("FALSE", "OFF") or value[0].text == "0")
    return any(o[0].is_(option) and on(o[1:]) for o in _split(r.group()))


def _maintenance_targets(r: _Reader) -> list[str]:
    """``table [(columns)] [, ...]``; every table of the schema when none is named."""
    tables = []
    while (name := r.name()) is not None:
        tables.append(name)
        r.group()
        if not r.take_op(","):
            break
    return tables or ["*"]


def _vacuum(r: _Reader) -> Classified:
    full = _options(r, "FULL")
    while word := r.take_any("FULL", "FREEZE", "VERBOSE", "ANALYZE", "ANALYSE"):
        full = full or word == "FULL"
    if full:
        return Classified(tuple(Effect(t, ACCESS_EXCLUSIVE, REWRITE, "VACUUM FULL copies the table into a new"
                                       " file", _REWRITE_ADVICE) for t in _maintenance_targets(r)))
    return Classified(tuple(Effect(t, SHARE_UPDATE_EXCLUSIVE, SCAN, "vacuums the table while reads and writes"
                                   " go on") for t in _maintenance_targets(r)))


def _analyze(r: _Reader) -> Classified:
    r.group()
    r.take("VERBOSE")
    return Classified(tuple(Effect(t, SHARE_UPDATE_EXCLUSIVE, SCAN, "samples the table while reads and writes"
                                   " go on") for t in _maintenance_targets(r)))


def _cluster(r: _Reader) -> Classified:
    """CLUSTER [VERBOSE] [table [USING index]] (or the old CLUSTER index ON table)."""
    r.group()
    r.take("VERBOSE")
    first = r.name()
    table = (r.name() if r.take("ON") else first) or "*"
    return _one(Effect(table, ACCESS_EXCLUSIVE, REWRITE, "CLUSTER copies the table in index order",
                       _REWRITE_ADVICE))


def _reindex(r: _Reader) -> Classified:
    """REINDEX [(options)] {INDEX|TABLE|SCHEMA|DATABASE|SYSTEM} [CONCURRENTLY] name."""
    concurrently = _options(r, "CONCURRENTLY")
    kind = r.take_any("INDEX", "TABLE", "SCHEMA", "DATABASE", "SYSTEM")
    concurrently = r.take("CONCURRENTLY") or concurrently
    name = r.name()
    if kind == "SYSTEM":
        return Classified(note="reindexes the system catalogs: locks no table of the app")
    if not kind or name is None:
        return _unknown("a REINDEX form this estimate does not know")
    target = name if kind in ("INDEX", "TABLE") else "*"
    if concurrently:
        effect = Effect(target, SHARE_UPDATE_EXCLUSIVE, BUILD, "rebuilds indexes concurrently: reads and"
                        " writes go on", on_index=kind == "INDEX")
    else:
        effect = Effect(target, SHARE, BUILD, "rebuilds indexes without CONCURRENTLY: writes wait, and so do"
                        " reads that use the index being rebuilt", _REINDEX_ADVICE, on_index=kind == "INDEX")
    return _one(effect)


_COMMANDS = {"UPDATE": lambda r: _dml(r, "update"), "DELETE": lambda r: _dml(r, "delete"),
             "INSERT": _insert, "TRUNCATE": _truncate, "LOCK": _lock, "VACUUM": _vacuum, "ANALYZE": _analyze,
             "ANALYSE": _analyze, "CLUSTER": _cluster, "REINDEX": _reindex}


# --- for job.lockestimate ---------------------------------------------------------------------------------


def longest(a: str, b: str) -> str:
    """The longer of two durations."""
    return max(a, b, key=DURATIONS.index)


def blocked(effect: Effect) -> str:
    """What an effect keeps other sessions from doing."""
    return effect.blocks or BLOCKED[effect.lock]


def check_expression(definition: str) -> tuple[Token, ...]:
    """The expression of ``CHECK ((...))`` as pg_get_constraintdef() renders it."""
    r = _Reader(tuple(tokens(definition)))
    return r.group() if r.take("CHECK") else ()
