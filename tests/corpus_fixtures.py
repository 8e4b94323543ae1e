"""The Prisma schema corpus (tests/corpus/): one folder per app, for tests to parametrize over."""

from __future__ import annotations

from pathlib import Path

CORPUS = Path(__file__).resolve().parent / "corpus"


def corpus_apps() -> list[Path]:
    """Sorted app folders of tests/corpus/: each has schema.prisma, schema.old.prisma and migrations/."""
    return sorted(p for p in CORPUS.iterdir() if p.is_dir() and (p / "schema.prisma").is_file())
