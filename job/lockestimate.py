"""The statements of the pending migrations weighed against the catalog: their lock estimates.

``job.lockrisk`` says what each statement locks from its tokens alone; this walks them in order, as the
files would run, against what the catalog holds (``Facts``): the rows of each table, the tables the
pending files create (new and empty: never warned), the validated CHECKs that spare SET NOT NULL its
scan, the live column types (a binary-coercible type change rewrites nothing), the volatility of the
functions a new column's default calls, and the indexes and columns that make IF NOT EXISTS a no-op.
Each file runs in one transaction, so a lock taken by an earlier statement of the file is still held
while a later one works: an UPDATE of every row after an ADD COLUMN keeps readers out too.
Pure: the runner reads the facts (``job.lockguard``) and passes them in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from job.lockrisk import (
    BLOCK_ORDER,
    BLOCKED,
    BRIEF,
    CHECKED,
    CREATED,
    DEFAULT_ADVICE,
    DROPPED,
    DURATIONS,
    GROWS,
    HELD,
    INDEXED,
    LOCK_MODES,
    NOTHING,
    READS_AND_WRITES,
    RENAMED,
    REWRITE,
    TRUNCATED,
    UNKNOWN,
    VALIDATED,
    WRITES,
    Change,
    Effect,
    Parsed,
    blocked,
    check_expression,
    longest,
    not_null_columns,
)
from job.schemamodel import Catalog
from job.units import refuses_transaction

_TYPE_SYNONYMS = {"varchar": "character varying", "decimal": "numeric"}


@dataclass(frozen=True)
class Facts:
    """What the catalog says, as plain data: everything ``estimate`` weighs the statements against."""

    rows: Mapping[str, int | None]  # each table of the schema: its estimated rows (None: not known)
    volatility: Mapping[str, str] = field(default_factory=dict)  # function: 'i', 's' or 'v' (most volatile)
    catalog: Catalog = field(default_factory=Catalog)  # the live schema: columns, checks, indexes
    relations: frozenset[str] = frozenset()  # every relation name of the schema (tables, indexes...)
    unvalidated: frozenset[str] = frozenset()  # constraints added NOT VALID, not validated yet


@dataclass(frozen=True)
class Estimate:
    """One statement of a pending migration, weighed: what it locks, for how long, over how many rows."""

    migration: str
    line: int
    statement: str  # its start, on one line
    table: str | None  # None: it locks no existing table, or is not understood
    rows: int | None  # the table's estimated rows; None when not known
    lock: str  # PostgreSQL's lock mode; "" when it locks no existing table; "unknown"
    blocks: str  # NOTHING, WRITES, READS_AND_WRITES or UNKNOWN
    duration: str  # BRIEF ... REWRITE, or UNKNOWN
    reason: str
    advice: str = ""
    new: bool = False  # a table the pending migrations create: empty, nothing to block
    verdict: str = ""  # set against the settings by job.lockguard: "warn" or "refuse"

    @property
    def blocking(self) -> bool:
        """It blocks writes for as long as work that grows with the table."""
        return self.blocks in (WRITES, READS_AND_WRITES) and self.duration in GROWS and not self.new

    def at_least(self, rows: int) -> bool:
        return self.blocking and self.rows is not None and self.rows >= rows

    def describe(self) -> str:
        """One line for people: ``line 3: CREATE INDEX ...: SHARE on "Event" (~120,000 rows): blocks ...``."""
        head = f"line {self.line}: {self.statement}"
        if self.lock == UNKNOWN:
            return f"{head}: not estimated ({self.reason})"
        if self.table is None:
            return f"{head}: {self.reason}"
        if self.new:
            return f'{head}: {self.lock} on "{self.table}", a table these migrations create (empty)'
        rows = "rows unknown" if self.rows is None else f"~{self.rows:,} rows"
        how = {BRIEF: "for a moment", HELD: "until the migration commits"}.get(self.duration,
                                                                               f"while it {self.duration}")
        return f'{head}: {self.lock} on "{self.table}" ({rows}): blocks {self.blocks} {how}'

    def fields(self) -> dict[str, Any]:
        """As log fields and JSON."""
        return {"migration": self.migration, "line": self.line, "statement": self.statement,
                "table": self.table, "rows": self.rows, "lock": self.lock, "blocks": self.blocks,
                "duration": self.duration, "reason": self.reason, "advice": self.advice, "new": self.new,
                "verdict": self.verdict}


def estimate(parsed: Iterable[Parsed], facts: Facts) -> tuple[Estimate, ...]:
    """Every statement weighed in order; what a statement changes (a table created, renamed, a CHECK
    validated) counts for the statements after it, across the pending files."""
    world = _World(facts)
    found: list[Estimate] = []
    for p in parsed:
        found += world.weigh(p)
        world.apply(p.classified.changes)
    return tuple(found)


def _type_key(text: str) -> tuple[str, tuple[int, ...]]:
    """``timestamp(3) without time zone`` -> ("timestamp without time zone", (3,))."""
    head, _, tail = text.partition("(")
    modifiers, _, after = tail.partition(")")
    base = " ".join(f"{head} {after}".split())
    return _TYPE_SYNONYMS.get(base, base), tuple(int(m) for m in modifiers.split(",") if m.strip().isdigit())


def coercible(old: str, new: str) -> bool:
    """A type change PostgreSQL makes without rewriting the table: the same type, text and varchar
    widened, or numeric given more precision at the same scale (old as format_type() prints it)."""
    (old_base, old_mods), (new_base, new_mods) = _type_key(old), _type_key(new)
    if (old_base, old_mods) == (new_base, new_mods):
        return True
    strings = ("text", "character varying")
    if old_base in strings and new_base in strings and not new_mods:
        return True
    if old_base == new_base == "character varying" and old_mods and new_mods:
        return new_mods[0] >= old_mods[0]
    if old_base == new_base == "numeric":
        return not new_mods or (len(old_mods) == len(new_mods) == 2 and new_mods[1] == old_mods[1]
                                and new_mods[0] >= old_mods[0])
    return False


class _World:
    """The schema as the pending files leave it, statement by statement."""

    def __init__(self, facts: Facts) -> None:
        self.facts = facts
        self.rows: dict[str, int | None] = dict(facts.rows)
        self.new: set[str] = set()
        self.live_name = {t: t for t in facts.catalog.tables}  # current name -> name in the live catalog
        self.relations = set(facts.relations)
        self.index_table = {i.name: t.name for t in facts.catalog.tables.values() for i in t.indexes}
        self.proven: set[tuple[str, str]] = set()  # (table, column) a validated CHECK proves NOT NULL
        self.pending: set[tuple[str, str, str]] = set()  # (table, constraint, column) proven once validated
        self.held: dict[str, tuple[str, int]] = {}  # the file's transaction: table -> (strongest lock, line)
        self.file = ""
        self.alone = False  # the statement before ran alone, outside a transaction
        for table in facts.catalog.tables.values():
            for check in table.checks:
                for column in not_null_columns(check_expression(check.definition)):
                    if check.name in facts.unvalidated:
                        self.pending.add((table.name, check.name, column))
                    else:
                        self.proven.add((table.name, column))

    def apply(self, changes: Iterable[Change]) -> None:
        for c in changes:
            if c.kind == CREATED and not (c.flag and c.table in self.rows):
                self.rows[c.table] = 0
                self.new.add(c.table)
                self.relations.add(c.table)
                self.live_name.pop(c.table, None)
            elif c.kind == DROPPED:
                self.rows.pop(c.table, None)
                self.new.discard(c.table)
                self.relations.discard(c.table)
                self.live_name.pop(c.table, None)
            elif c.kind == RENAMED:
                self._rename(c.table, c.name)
            elif c.kind == TRUNCATED and c.table in self.rows:
                self.rows[c.table] = 0
            elif c.kind == INDEXED:
                self.relations.add(c.name)
                self.index_table[c.name] = c.table
            elif c.kind == CHECKED and c.flag:
                self.proven.add((c.table, c.column))
            elif c.kind == CHECKED:
                self.pending.add((c.table, c.name, c.column))
            elif c.kind == VALIDATED:
                self.proven |= {(t, col) for t, name, col in self.pending if (t, name) == (c.table, c.name)}

    def _rename(self, old: str, new: str) -> None:
        if old in self.rows:
            self.rows[new] = self.rows.pop(old)
        if old in self.new:
            self.new = (self.new - {old}) | {new}
        if old in self.live_name:
            self.live_name[new] = self.live_name.pop(old)
        self.relations = (self.relations - {old}) | {new}
        self.index_table = {i: new if t == old else t for i, t in self.index_table.items()}
        self.proven = {(new if t == old else t, col) for t, col in self.proven}
        self.pending = {(new if t == old else t, n, col) for t, n, col in self.pending}

    def weigh(self, p: Parsed) -> list[Estimate]:
        alone = refuses_transaction(p.statement) is not None
        if p.migration != self.file or p.statement.tokens[0].is_("COMMIT", "END", "ROLLBACK", "ABORT") \
                or alone or self.alone:
            # A new transaction: a new file, the file's own COMMIT, or a unit of its own (job.units): a
            # statement run outside any transaction, and what follows it.
            self.file, self.held = p.migration, {}
        self.alone = alone
        found = self._weigh(p)
        for e in found:
            if e.table is not None and not e.new and e.lock in LOCK_MODES:
                held = self.held.get(e.table)
                if held is None or LOCK_MODES.index(e.lock) > LOCK_MODES.index(held[0]):
                    self.held[e.table] = (e.lock, e.line)
        return found

    def _weigh(self, p: Parsed) -> list[Estimate]:
        start: dict[str, Any] = {"migration": p.migration, "line": p.statement.line,
                                 "statement": p.statement.snippet}
        c = p.classified
        if not c.understood:
            return [Estimate(**start, table=None, rows=None, lock=UNKNOWN, blocks=UNKNOWN, duration=UNKNOWN,
                             reason=c.note)]
        targets = [x for e in c.effects for x in self._targets(e)]
        effects = [s for x in targets if (s := self._settle(x)) is not None]
        if not effects:
            note = c.note or ("nothing to do: it exists already" if targets
                              else "its table is not known" if c.effects else "locks no table's rows")
            return [Estimate(**start, table=None, rows=None, lock="", blocks=NOTHING, duration=BRIEF,
                             reason=note)]
        by_table: dict[str, list[Effect]] = {}
        for e in effects:
            by_table.setdefault(e.table, []).append(e)
        return [self._combine(start, table, group) for table, group in by_table.items()]

    def _targets(self, e: Effect) -> list[Effect]:
        """The effect on each table it reaches: an index's table, or every table of the schema for "*"."""
        if e.table == "*":
            return [replace(e, table=t) for t in sorted(self.rows) if t not in self.new]
        if e.on_index:
            table = self.index_table.get(e.table)
            return [replace(e, table=table, on_index=False)] if table else []
        return [e]

    def _settle(self, e: Effect) -> Effect | None:
        """The effect with its conditions settled by the catalog; None when it would do nothing."""
        live = self.facts.catalog.tables.get(self.live_name.get(e.table, ""))
        if e.index_if_missing and e.index_if_missing in self.relations:
            return None
        if e.column_if_missing and live is not None and live.column(e.column_if_missing) is not None:
            return None
        if e.calls:
            volatile = sorted(f for f in e.calls if self.facts.volatility.get(f, "v") == "v")
            unknown = [f for f in volatile if f not in self.facts.volatility]
            if volatile:
                why = "" if not unknown else " (not in the catalog yet: a new function is VOLATILE unless" \
                                             " declared otherwise)"
                e = replace(e, duration=longest(e.duration, REWRITE), advice=e.advice or DEFAULT_ADVICE,
                            reason=f"{e.reason}; its default calls {', '.join(f + '()' for f in volatile)},"
                                   f" volatile{why}: every row gets its own value, the table is rewritten")
        if e.not_null and (e.table, e.not_null) in self.proven:
            e = replace(e, duration=BRIEF, advice="",
                        reason=f'sets "{e.not_null}" NOT NULL: a validated CHECK proves it, no scan')
        if e.retype is not None and live is not None and (col := live.column(e.retype[0])) is not None \
                and coercible(col.type, e.retype[1]):
            e = replace(e, duration=BRIEF, advice="", reason=f'changes the type of "{e.retype[0]}" from'
                        f" {col.type} to {e.retype[1]}: binary-coercible, no rewrite")
        return e

    def _combine(self, start: dict[str, Any], table: str, effects: list[Effect]) -> Estimate:
        """One statement's effects on one table: the strongest lock, held as long as the longest of them."""
        lock = max((e.lock for e in effects), key=LOCK_MODES.index)
        duration = max((e.duration for e in effects), key=DURATIONS.index)
        blocks = max((blocked(e) for e in effects), key=BLOCK_ORDER.index)
        reasons = list(dict.fromkeys(e.reason for e in effects))
        also = sorted({t for e in effects for t in e.also_locks} - {table})
        if also:
            names = ", ".join(f'"{t}"' for t in also)
            reasons.append(f"{names} locked in the same mode as long")
        advice = "; ".join(dict.fromkeys(e.advice for e in effects if e.advice and e.duration in GROWS))
        new = table in self.new
        if duration in GROWS and not new:
            lock, blocks = self._still_held(table, lock, blocks, reasons)
        return Estimate(**start, table=table, rows=0 if new else self.rows.get(table), lock=lock,
                        blocks=blocks, duration=duration, reason="; ".join(reasons),
                        advice="" if new else advice, new=new)

    def _still_held(self, table: str, lock: str, blocks: str, reasons: list[str]) -> tuple[str, str]:
        """Work that grows with a table, while the file's transaction holds locks taken before it: a
        stronger one on that table is what others meet; one on another table blocks it as long."""
        for other, (mode, line) in sorted(self.held.items()):
            if other == table and LOCK_MODES.index(mode) > LOCK_MODES.index(lock):
                lock, blocks = mode, BLOCKED[mode]
                reasons.append(f"the file's transaction holds {mode} on it since line {line}: {blocks} wait"
                               " as long")
            elif other != table and BLOCKED[mode] != NOTHING:
                reasons.append(f"the file's transaction holds {mode} on \"{other}\" since line {line}:"
                               f" {BLOCKED[mode]} of it wait as long")
        return lock, blocks
