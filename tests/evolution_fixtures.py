"""The evolution fixture (tests/evolution/): successive releases an app team makes on top of our app's
migrations folder, and migrations folders cut after any one of them.

    for release in releases():
        folder = folder_until(release.name, tmp_path / release.name)   # shipped two + every release so far
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

__all__ = ["EVOLUTION", "MIGRATIONS", "OWN_TRANSACTION", "Release", "folder_until", "releases"]

EVOLUTION = Path(__file__).resolve().parent / "evolution"
MIGRATIONS = EVOLUTION / "migrations"  # the folder after the last release
OWN_TRANSACTION = EVOLUTION / "with_own_transaction"  # a folder whose last migration fails
LOCK_FILE = "migration_lock.toml"


@dataclass(frozen=True)
class Release:
    name: str  # "NN_slug"
    migrations: tuple[str, ...]  # the migration folders it added, in order
    schema: Path  # the app's schema.prisma after it
    hand_written: bool  # False: its migration is what `prisma migrate diff` writes between the schemas
    what: str


def releases() -> list[Release]:
    """The releases of tests/evolution/releases.json, oldest first (release 00 is the shipped folder)."""
    raw = json.loads((EVOLUTION / "releases.json").read_text(encoding="utf-8"))
    if not isinstance(raw, list):
        raise ValueError("releases.json: expected a list")
    out: list[Release] = []
    for item in raw:
        if not isinstance(item, dict):
            raise ValueError(f"releases.json: expected an object, got {item!r}")
        migrations = item["migrations"]
        if not isinstance(migrations, list) or not all(isinstance(m, str) for m in migrations):
            raise ValueError(f"releases.json: {item.get('release')!r}: migrations must be a list of names")
        out.append(Release(
            name=str(item["release"]),
            migrations=tuple(migrations),
            schema=EVOLUTION / str(item["schema"]),
            hand_written=bool(item["hand_written"]),
            what=str(item["what"]),
        ))
    return out


def folder_until(release_name: str, dest: Path) -> Path:
    """Write to dest (created; it must not exist or be empty) the migrations folder as it stood after
    release_name: migration_lock.toml and the migrations of every release up to and including it."""
    names: list[str] = []
    for release in releases():
        names.extend(release.migrations)
        if release.name == release_name:
            break
    else:
        raise KeyError(f"no release {release_name!r} in {EVOLUTION / 'releases.json'}")
    dest.mkdir(parents=True, exist_ok=True)
    if any(dest.iterdir()):
        raise FileExistsError(f"{dest} is not empty")
    shutil.copyfile(MIGRATIONS / LOCK_FILE, dest / LOCK_FILE)
    for name in names:
        shutil.copytree(MIGRATIONS / name, dest / name)
    return dest
