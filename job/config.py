"""Settings from the environment (twelve-factor), each also a command-line flag.

``SETTINGS`` is the one table of what can be set: the CLI builds its flags from
it, README documents it, and a test checks that the two agree.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from job.dburl import DatabaseTarget, parse_database_url
from job.errors import ConfigError


@dataclass(frozen=True)
class Setting:
    key: str  # attribute of Config and the flag name (--connect-timeout)
    env: str
    default: str
    help: str


SETTINGS: tuple[Setting, ...] = (
    Setting("database_url", "DIRECT_URL, DATABASE_URL", "",
            "PostgreSQL URL in Prisma's form; DIRECT_URL wins, as with Prisma Migrate"),
    Setting("migrations_dir", "DB_INIT_MIGRATIONS_DIR", "prisma/migrations",
            "Prisma migrations folder (relative paths: the working directory, then the install)"),
    Setting("connect_timeout", "DB_INIT_CONNECT_TIMEOUT", "60s",
            "total time to keep retrying the connection"),
    Setting("lock_timeout", "DB_INIT_LOCK_TIMEOUT", "60s",
            "total time to wait for the migration lock and for busy tables"),
    Setting("ddl_lock_timeout", "DB_INIT_DDL_LOCK_TIMEOUT", "2s",
            "lock_timeout of each DDL transaction: the most an app query waits behind the job"),
    Setting("statement_timeout", "DB_INIT_STATEMENT_TIMEOUT", "60s",
            "statement_timeout of each DDL transaction"),
    Setting("log_format", "DB_INIT_LOG_FORMAT", "auto",
            "json (Cloud Logging), console, or auto: console on a TTY, json otherwise"),
    Setting("log_level", "DB_INIT_LOG_LEVEL", "info", "debug, info, warning or error"),
    Setting("application_name", "DB_INIT_APPLICATION_NAME", "db-init-job",
            "application_name shown in pg_stat_activity while the job runs"),
)

# (smallest, largest) accepted, in seconds: outside these a value is a typo, not a wish.
_BOUNDS = {
    "connect_timeout": (1.0, 3600.0),
    "lock_timeout": (0.0, 3600.0),
    "ddl_lock_timeout": (0.05, 60.0),
    "statement_timeout": (1.0, 86400.0),
}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min)?\s*$")
_UNIT = {"ms": 0.001, "s": 1.0, None: 1.0, "m": 60.0, "min": 60.0}
LOG_FORMATS = ("auto", "json", "console")
LOG_LEVELS = ("debug", "info", "warning", "error")


@dataclass(frozen=True)
class Config:
    target: DatabaseTarget
    url_source: str  # which variable or flag the URL came from
    migrations_dir: Path
    connect_timeout: float
    lock_timeout: float
    ddl_lock_timeout: float
    statement_timeout: float
    log_format: str
    log_level: str
    application_name: str


def load_logging(flags: Mapping[str, str | None], env: Mapping[str, str]) -> tuple[str, str]:
    """Log settings alone, read first so that even a config error is logged as configured."""
    fmt = _raw("log_format", flags, env).lower()
    level = _raw("log_level", flags, env).lower()
    return (fmt if fmt in LOG_FORMATS else "auto", level if level in LOG_LEVELS else "info")


def load_config(flags: Mapping[str, str | None], env: Mapping[str, str] = os.environ) -> Config:
    url, source = _database_url(flags, env)
    fmt = _raw("log_format", flags, env).lower()
    if fmt not in LOG_FORMATS:
        raise ConfigError(f"DB_INIT_LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}, not {fmt!r}")
    level = _raw("log_level", flags, env).lower()
    if level not in LOG_LEVELS:
        raise ConfigError(f"DB_INIT_LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, not {level!r}")
    app = _raw("application_name", flags, env)
    if not app or len(app) > 63 or not app.isprintable():
        raise ConfigError("DB_INIT_APPLICATION_NAME must be 1 to 63 printable characters")
    return Config(
        target=parse_database_url(url),
        url_source=source,
        migrations_dir=_migrations_dir(_raw("migrations_dir", flags, env)),
        connect_timeout=_duration("connect_timeout", flags, env),
        lock_timeout=_duration("lock_timeout", flags, env),
        ddl_lock_timeout=_duration("ddl_lock_timeout", flags, env),
        statement_timeout=_duration("statement_timeout", flags, env),
        log_format=fmt,
        log_level=level,
        application_name=app,
    )


def _setting(key: str) -> Setting:
    return next(s for s in SETTINGS if s.key == key)


def _raw(key: str, flags: Mapping[str, str | None], env: Mapping[str, str]) -> str:
    flag = flags.get(key)
    if flag is not None:
        return flag
    s = _setting(key)
    return env.get(s.env) or s.default


def _database_url(flags: Mapping[str, str | None], env: Mapping[str, str]) -> tuple[str, str]:
    if flags.get("database_url"):
        return str(flags["database_url"]), "--database-url"
    for name in ("DIRECT_URL", "DATABASE_URL"):
        if env.get(name, "").strip():
            return env[name], name
    raise ConfigError("no database URL: set DIRECT_URL or DATABASE_URL (or pass --database-url)")


def _duration(key: str, flags: Mapping[str, str | None], env: Mapping[str, str]) -> float:
    raw = _raw(key, flags, env)
    name = _setting(key).env
    m = _DURATION.match(raw)
    if not m:
        raise ConfigError(f"{name}={raw[:30]!r} is not a duration (examples: 30, 30s, 500ms, 2m)")
    seconds = float(m[1]) * _UNIT[m[2]]
    low, high = _BOUNDS[key]
    if not low <= seconds <= high:
        raise ConfigError(f"{name}={raw!r} is out of range: between {low:g}s and {high:g}s")
    return seconds


def _migrations_dir(raw: str) -> Path:
    path = Path(raw)
    if path.is_absolute() or path.exists():
        return path
    installed = Path(__file__).resolve().parent.parent / raw
    return installed if installed.exists() else path
