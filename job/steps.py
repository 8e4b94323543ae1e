"""The unit of a plan: one named change, its exact SQL, and what it touches."""

from __future__ import annotations

from dataclasses import dataclass, field

from job.statements import Statement
from job.units import Unit


@dataclass(frozen=True)
class Step:
    action: str  # stable name, logged as the ``action`` field
    summary: str  # one line for people
    statements: tuple[Statement, ...]
    migration: str | None = None  # the migration this step applies or records
    ledger_change: bool = False  # a ledger row written or closed
    details: dict[str, int | str] = field(default_factory=dict, compare=False)  # counts, for the log
    # Run outside a transaction block (CREATE/DROP INDEX CONCURRENTLY), each statement on its own.
    outside_transaction: bool = False
    # A migration run in several units (job.units): each a transaction of its own, or alone outside one.
    units: tuple[Unit, ...] = ()

    def sql_text(self) -> str:
        return ";\n".join(s.as_string().strip().rstrip(";") for s in self.statements) + ";"
