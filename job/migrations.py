"""The migrations folder, read exactly as Prisma Migrate reads it.

Layout: ``<dir>/migration_lock.toml`` naming the provider (optional: Prisma checks the
provider only when the file exists), and one ``<dir>/<name>/migration.sql`` per migration,
applied in name order.  The checksum is Prisma's: the lowercase SHA-256 hex of the file's bytes.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from job.errors import ConfigError

_PROVIDER = re.compile(r"""^\s*provider\s*=\s*["']([^"']+)["']""", re.M)


@dataclass(frozen=True)
class Migration:
    name: str
    sql: str
    checksum: str


def load_migrations(folder: Path) -> tuple[Migration, ...]:
    if not folder.is_dir():
        raise ConfigError(f"migrations folder {folder} does not exist or is not a folder")
    _check_provider(folder / "migration_lock.toml")
    found = []
    try:
        for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
            script = sub / "migration.sql"
            if not script.is_file():
                continue  # Prisma skips folders without a script, too
            raw = script.read_bytes()
            found.append(Migration(sub.name, _decode(script, raw), hashlib.sha256(raw).hexdigest()))
    except OSError as exc:
        raise ConfigError(f"cannot read the migrations folder {folder}: {exc.strerror}") from None
    if not found:
        raise ConfigError(f"migrations folder {folder} holds no <name>/migration.sql")
    return tuple(found)


def _check_provider(lock_file: Path) -> None:
    try:
        text = lock_file.read_text(encoding="utf-8")
    except FileNotFoundError:
        return  # `prisma migrate deploy` applies a folder without one; it checks only a file it finds
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {lock_file}: {exc}") from None
    try:
        provider = tomllib.loads(text).get("provider")
    except tomllib.TOMLDecodeError:
        m = _PROVIDER.search(text)
        provider = m[1] if m else None
    if provider != "postgresql":
        raise ConfigError(f"{lock_file} names provider {provider!r}, not 'postgresql' (Prisma's P3019)")


def _decode(path: Path, raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not UTF-8 text") from None


def same_timestamps(migrations: tuple[Migration, ...]) -> list[tuple[str, ...]]:
    """Migrations whose names share the timestamp prefix: Prisma applies them in name order."""
    by_stamp: dict[str, list[str]] = {}
    for m in migrations:
        stamp = m.name.split("_", 1)[0]
        if stamp.isdigit():
            by_stamp.setdefault(stamp, []).append(m.name)
    return [tuple(names) for names in by_stamp.values() if len(names) > 1]
