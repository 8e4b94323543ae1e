"""A migration file cut into the fewest units PostgreSQL lets it run in, decided before anything runs.

A file runs as one transaction whenever PostgreSQL allows it.  Two things forbid it, and since Prisma
7.4 `prisma migrate deploy` sends a file statement by statement, so files holding them deploy:

- a statement PostgreSQL refuses in a transaction block (``CREATE INDEX CONCURRENTLY``, ``VACUUM``,
  ``ALTER SYSTEM``...): it runs alone, outside any transaction;
- an enum value added (``ALTER TYPE ... ADD VALUE``) and then used by a later statement: PostgreSQL
  lets a value be used only once the transaction that added it has committed (55P04), so the unit
  that adds it commits before the statement that first uses it.

Every other run of consecutive statements stays together in one transaction.  A file with its own
transaction control (``BEGIN``/``COMMIT``...) is left whole: it says itself how it commits.

Pure: the statements come from ``job.sqllexer``, which knows comments, strings, ``E''`` strings, quoted
identifiers and dollar-quoted bodies.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

from job.sqllexer import DOLLAR, STRING, Statement, Token, statements

# The start of `logs` on the ledger row of a file the job runs in several units, while it runs: the
# row counts its committed statements in applied_steps_count, so the next run continues after them.
PROGRESS_TAG = "db-init: applying in units; applied_steps_count counts the statements committed"


@dataclass(frozen=True)
class Unit:
    first: int  # index of its first statement in the file, from 0
    statements: tuple[Statement, ...]
    transaction: bool  # False: alone, outside a transaction block
    why: str  # why it stands apart from the unit before it ("" for the first)
    text: str  # its source, from its first statement's first token to its last statement's end

    @property
    def last(self) -> int:
        """Index just past its last statement: the count of statements done once it commits."""
        return self.first + len(self.statements)

    @property
    def line(self) -> int:
        return self.statements[0].line

    @property
    def snippet(self) -> str:
        return self.statements[0].snippet

    def describe(self, number: int, total: int) -> str:
        how = "one transaction" if self.transaction else "outside a transaction"
        span = (f"statement {self.first + 1}" if len(self.statements) == 1
                else f"statements {self.first + 1}-{self.last}")
        return f"unit {number} of {total} ({span}, line {self.line}, {how}): {self.snippet}"


# Pure, and its answer immutable: a run asks it of each pending file up to three times (the replay, the
# plan, the plan again under the lock), a fleet run of every database; the file is lexed once.
@functools.lru_cache(maxsize=64)
def plan_units(sql: str) -> tuple[Unit, ...] | None:
    """The file's units; None when it runs whole, as one simple query in one transaction (every file
    PostgreSQL allows so, and every file with its own transaction control)."""
    found = statements(sql)
    if any(controls_transaction(s) for s in found):
        return None
    units = _units(sql, found, 0)
    return None if len(units) <= 1 and all(u.transaction for u in units) else units


def cut(sql: str, *, done: int) -> tuple[Unit, ...]:
    """The units of what is left of a file whose first ``done`` statements are committed."""
    return _units(sql, statements(sql), done)


def one_by_one(sql: str, start: int, *, stop: int | None = None) -> tuple[Unit, ...]:
    """Statements ``start`` to ``stop`` a unit each, as Prisma 7 sends them: after PostgreSQL refused
    them together (a statement this module does not know refuses a transaction block)."""
    found = statements(sql)[start:stop]
    return tuple(Unit(start + i, (s,), refuses_transaction(s) is None,
                      refuses_transaction(s) or "run statement by statement", _source(sql, [s]))
                 for i, s in enumerate(found))


def sets_lock_timeout(sql: str, before: int) -> bool:
    """Whether one of the file's statements before index ``before`` sets lock_timeout itself."""
    for s in statements(sql)[:before]:
        words = [t.text.lower() for t in s.tokens[:4] if t.kind == "word"]
        if words[:1] == ["set"] and "lock_timeout" in words[1:3]:
            return True
    return False


def _units(sql: str, found: Sequence[Statement], done: int) -> tuple[Unit, ...]:
    units: list[Unit] = []
    current: list[Statement] = []
    added: set[str] = set()  # enum labels added by the open unit, not yet committed
    start, why = done, ""

    def close(next_why: str) -> None:
        nonlocal current, start, why
        if current:
            units.append(Unit(start, tuple(current), True, why, _source(sql, current)))
            start, why = start + len(current), next_why
        current = []
        added.clear()

    for statement in found[done:]:
        alone = refuses_transaction(statement)
        if alone is not None:
            close("")
            units.append(Unit(start, (statement,), False, alone, _source(sql, [statement])))
            start, why = start + 1, ""
            continue
        used = next((label for label in sorted(added) if uses_label(statement, label)), None)
        if used is not None:
            close(f"enum value '{used}' is used here: committed first, as PostgreSQL requires (55P04)")
        current.append(statement)
        if (label := added_enum_value(statement)) is not None:
            added.add(label)
    close("")
    return tuple(units)


def _source(sql: str, run: Sequence[Statement]) -> str:
    first, last = run[0], run[-1]
    return sql[first.tokens[0].at:last.tokens[0].at + len(last.text)]


def _words(statement: Statement, count: int) -> list[str]:
    return [t.text.upper() for t in statement.tokens[:count] if t.kind == "word"]


def _has_word(statement: Statement, word: str) -> bool:
    return any(t.is_(word) for t in statement.tokens)


def refuses_transaction(statement: Statement) -> str | None:
    """Why PostgreSQL runs this statement only outside a transaction block, or None."""
    words = _words(statement, 6)
    head = " ".join(words[:2])
    if head in ("CREATE INDEX", "CREATE UNIQUE") and _has_word(statement, "CONCURRENTLY"):
        return "CREATE INDEX CONCURRENTLY runs only outside a transaction block"
    if head == "DROP INDEX" and words[2:3] == ["CONCURRENTLY"]:
        return "DROP INDEX CONCURRENTLY runs only outside a transaction block"
    if words[:1] == ["REINDEX"] and (_has_word(statement, "CONCURRENTLY")
                                     or any(w in ("SYSTEM", "DATABASE", "SCHEMA") for w in words[1:3])):
        return "this REINDEX runs only outside a transaction block"
    if words[:1] == ["VACUUM"]:
        return "VACUUM runs only outside a transaction block"
    if words[:1] == ["CLUSTER"] and len(statement.tokens) == 1:
        return "CLUSTER of every table runs only outside a transaction block"
    if head in ("ALTER SYSTEM", "CREATE DATABASE", "DROP DATABASE", "CREATE TABLESPACE", "DROP TABLESPACE",
                "CREATE SUBSCRIPTION", "DROP SUBSCRIPTION", "DISCARD ALL", "COMMIT PREPARED",
                "ROLLBACK PREPARED"):
        return f"{head} runs only outside a transaction block"
    if head == "ALTER DATABASE" and _has_word(statement, "TABLESPACE"):
        return "ALTER DATABASE ... SET TABLESPACE runs only outside a transaction block"
    if head == "ALTER SUBSCRIPTION" and _has_word(statement, "REFRESH"):
        return "ALTER SUBSCRIPTION ... REFRESH runs only outside a transaction block"
    return None


def controls_transaction(statement: Statement) -> bool:
    """BEGIN, START TRANSACTION, COMMIT, END, ROLLBACK, ABORT: the file runs its own transactions."""
    words = _words(statement, 2)
    if words[:1] in (["BEGIN"], ["COMMIT"], ["END"], ["ABORT"]):
        return words[1:2] != ["PREPARED"] and not (words[:1] == ["COMMIT"] and len(words) > 1
                                                    and words[1] == "PREPARED")
    if words[:1] == ["ROLLBACK"]:
        return words[1:2] not in (["PREPARED"], ["TO"])
    return words[:2] == ["START", "TRANSACTION"]


def added_enum_value(statement: Statement) -> str | None:
    """The label of ``ALTER TYPE name ADD VALUE [IF NOT EXISTS] 'label'``, or None."""
    toks = statement.tokens
    if _words(statement, 2) != ["ALTER", "TYPE"]:
        return None
    for i, token in enumerate(toks[:-1]):
        if token.is_("ADD") and toks[i + 1].is_("VALUE"):
            label = next((t for t in toks[i + 2:] if t.kind == STRING), None)
            return _string_value(label) if label is not None else None
    return None


def uses_label(statement: Statement, label: str) -> bool:
    """Whether the statement may use the enum label: as a string literal, or quoted in a body."""
    quoted = "'" + label.replace("'", "''") + "'"
    return any((t.kind == STRING and _string_value(t) == label) or (t.kind == DOLLAR and quoted in t.text)
               for t in statement.tokens)


def _string_value(token: Token) -> str:
    text = token.text
    if text[:1] in "eE":
        body = text[2:-1] if text.endswith("'") else text[2:]
        return body.replace("''", "'").encode("latin-1", "backslashreplace").decode("unicode_escape")
    body = text[1:-1] if len(text) > 1 and text.endswith("'") else text[1:]
    return body.replace("''", "'")


# Statements that may change rows (or run code that does): a file holding one may have done work that
# no catalog shows.
_DATA = frozenset({"INSERT", "UPDATE", "DELETE", "MERGE", "COPY", "TRUNCATE", "DO", "CALL", "SELECT", "WITH",
                   "EXECUTE", "VALUES", "TABLE", "REFRESH", "CLUSTER", "LOCK"})


def only_ddl(sql: str) -> bool:
    """Whether every statement of the file changes the schema only: then what it did is in the catalog."""
    return all(not (_words(s, 1)[:1] and _words(s, 1)[0] in _DATA) for s in statements(sql))


def creates_index(statement: Statement) -> str | None:
    """The name of the index ``CREATE [UNIQUE] INDEX CONCURRENTLY [IF NOT EXISTS] name ON`` builds."""
    toks = list(statement.tokens)
    for i, token in enumerate(toks):
        if token.is_("ON"):
            before = toks[i - 1] if i else None
            if before is None or before.is_("CONCURRENTLY", "EXISTS", "INDEX"):
                return None  # no name given: PostgreSQL chose one, which cannot be found again
            return before.name
    return None


def drops_indexes(statement: Statement) -> tuple[str, ...]:
    """The names ``DROP INDEX CONCURRENTLY [IF EXISTS] name[, ...]`` drops (each one's last part)."""
    names: list[str] = []
    for token in statement.tokens[3:]:
        if token.is_("CASCADE", "RESTRICT"):
            break
        if token.is_("IF", "EXISTS") or token.text == ",":
            continue
        if token.text == "." and names:
            names.pop()  # the schema's name: the index's own follows
        elif token.name is not None:
            names.append(token.name)
    return tuple(names)


# What a statement outside a transaction has left when a run stopped right after it, before its
# progress was counted: found again from the catalog (an index), harmless to run again, or unknown.
INDEX_BUILT, INDEXES_DROPPED, RUN_AGAIN = "index_built", "indexes_dropped", "run_again"


def after_a_stop(statement: Statement) -> str | None:
    """How the next run tells whether this statement (run outside a transaction) took effect."""
    words = _words(statement, 3)
    if words[:1] == ["CREATE"] and _has_word(statement, "CONCURRENTLY"):
        return INDEX_BUILT if creates_index(statement) else None
    if words[:3] == ["DROP", "INDEX", "CONCURRENTLY"]:
        return INDEXES_DROPPED if drops_indexes(statement) else None
    if words[:1] in (["REINDEX"], ["VACUUM"], ["CLUSTER"]) or words[:2] == ["ALTER", "SYSTEM"]:
        return RUN_AGAIN  # rebuilds, cleans or sets the same thing again
    return None
