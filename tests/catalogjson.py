"""Catalogs as JSON: the contract replayed once by a real PostgreSQL, kept for the pure tests.

``tests/fixtures/contract.json`` is what the shipped migrations folder builds;
``test_catalog.py`` replays the folder on a real server and checks that the file
is still exactly that, so the planner tests never drift from PostgreSQL.
Regenerate with ``python tests/catalogjson.py`` (needs the dev install).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from job.schemamodel import Catalog, Check, Column, ForeignKey, Index, Table

CONTRACT_JSON = Path(__file__).resolve().parent / "fixtures" / "contract.json"


def to_json(catalog: Catalog) -> str:
    doc = {"tables": {name: asdict(t) for name, t in sorted(catalog.tables.items())},
           "enums": {k: list(v) for k, v in sorted(catalog.enums.items())},
           "views": dict(sorted(catalog.views.items())), "sequences": sorted(catalog.sequences)}
    return json.dumps(doc, indent=1, sort_keys=True) + "\n"


def _table(doc: dict[str, Any]) -> Table:
    return Table(doc["name"], tuple(Column(**c) for c in doc["columns"]),
                 tuple(Index(**{**i, "columns": tuple(i["columns"])}) for i in doc["indexes"]),
                 tuple(ForeignKey(**{**f, "columns": tuple(f["columns"]),
                                     "ref_columns": tuple(f["ref_columns"])}) for f in doc["foreign_keys"]),
                 tuple(Check(**c) for c in doc["checks"]))


def from_json(text: str) -> Catalog:
    doc = json.loads(text)
    return Catalog({k: _table(v) for k, v in doc["tables"].items()},
                   {k: tuple(v) for k, v in doc["enums"].items()}, dict(doc["views"]),
                   frozenset(doc["sequences"]))


def load_contract() -> Catalog:
    return from_json(CONTRACT_JSON.read_text(encoding="utf-8"))


if __name__ == "__main__":
    import tempfile

    import pgserver
    import psycopg

    from job.database import Database
    from job.migrations import load_migrations

    folder = Path(__file__).resolve().parent.parent / "prisma" / "migrations"
    with tempfile.TemporaryDirectory() as tmp:
        server = pgserver.get_server(Path(tmp), cleanup_mode="stop")  # type: ignore[attr-defined]
        db = Database(psycopg.connect(server.get_uri(), autocommit=True, prepare_threshold=None))
        replay = db.replay([(m.name, m.sql) for m in load_migrations(folder)], lock_timeout_ms=2000,
                           statement_timeout_ms=60000, home="public", pooled=False)
        CONTRACT_JSON.write_text(to_json(replay.catalogs[max(replay.catalogs)]), encoding="utf-8")
        db.close()
        server.cleanup()
    print(f"wrote {CONTRACT_JSON}")
