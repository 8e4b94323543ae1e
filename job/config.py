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
    metavar: str = "VALUE"  # what the value is, in --help: DURATION, URL, PATH...
    choices: tuple[str, ...] = ()
    # A boolean whose flag takes no value and turns it off (--no-create-database); its variable says
    # true or false.
    switch_off: str = ""

    @property
    def flag(self) -> str:
        return self.switch_off or f"--{self.key.replace('_', '-')}"


LOG_FORMATS = ("auto", "json", "console")
LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_SINKS = ("stderr", "cloud-logging")
HEAL_MODES = ("pending", "always")

SETTINGS: tuple[Setting, ...] = (
    Setting("database_url", "DIRECT_URL, DATABASE_URL", "",
            "PostgreSQL URL in Prisma's form; DIRECT_URL wins, as with Prisma Migrate", "URL"),
    Setting("migrations_dir", "DB_INIT_MIGRATIONS_DIR", "prisma/migrations",
            "Prisma migrations folder (relative paths: the working directory, then the install)", "PATH"),
    Setting("connect_timeout", "DB_INIT_CONNECT_TIMEOUT", "60s",
            "total time to keep retrying the connection", "DURATION"),
    Setting("lock_timeout", "DB_INIT_LOCK_TIMEOUT", "60s",
            "total time to wait for the migration lock and for busy tables", "DURATION"),
    Setting("ddl_lock_timeout", "DB_INIT_DDL_LOCK_TIMEOUT", "2s",
            "lock_timeout of each DDL transaction: the most an app query waits behind the job", "DURATION"),
    Setting("statement_timeout", "DB_INIT_STATEMENT_TIMEOUT", "60s",
            "statement_timeout of each DDL transaction", "DURATION"),
    Setting("log_format", "DB_INIT_LOG_FORMAT", "auto",
            "json (Cloud Logging), console, or auto: console on a TTY, json otherwise", "FORMAT",
            LOG_FORMATS),
    Setting("log_level", "DB_INIT_LOG_LEVEL", "info", "the least severe level logged", "LEVEL", LOG_LEVELS),
    Setting("log_sink", "DB_INIT_LOG_SINK", "stderr",
            "stderr only, or also cloud-logging: every entry sent through Cloud Logging's API before exit",
            "SINK", LOG_SINKS),
    Setting("log_sink_endpoint", "DB_INIT_LOG_SINK_ENDPOINT", "https://logging.googleapis.com",
            "Cloud Logging API endpoint of the cloud-logging sink (e.g. a Private Service Connect name)",
            "URL"),
    Setting("heal", "DB_INIT_HEAL", "pending",
            "when to rebuild the contract and repair what recorded migrations built: pending (when the"
            " ledger has work, a failed row or a broken mark; an up-to-date database costs one catalog"
            " read) or always (every run replays the folder, so drift such as a dropped index is repaired)",
            "WHEN", HEAL_MODES),
    Setting("warn_blocking_rows", "DB_INIT_WARN_BLOCKING_ROWS", "100000",
            "warn (migration.lock_risk) before a pending statement that blocks writes while it scans,"
            " rewrites, indexes or updates a table estimated to hold at least this many rows; off: never",
            "ROWS"),
    Setting("refuse_blocking_rows", "DB_INIT_REFUSE_BLOCKING_ROWS", "",
            "off unless set: refuse to run (exit 5, nothing applied) when such a statement meets a table"
            " estimated to hold at least this many rows", "ROWS"),
    Setting("application_name", "DB_INIT_APPLICATION_NAME", "db-init-job",
            "application_name shown in pg_stat_activity while the job runs", "NAME"),
    Setting("create_database", "DB_INIT_CREATE_DATABASE", "true",
            "turn off what run does by default: create the database named in the URL when it does not"
            " exist, as prisma migrate deploy does (logged as database.created); the variable: true or false",
            "", switch_off="--no-create-database"),
)

# (smallest, largest) accepted, in seconds: outside these a value is a typo, not a wish.
_BOUNDS = {
    "connect_timeout": (1.0, 3600.0),
    "lock_timeout": (0.0, 3600.0),
    "ddl_lock_timeout": (0.05, 60.0),
    "statement_timeout": (1.0, 86400.0),
}
_MOST_ROWS = 10**12  # a row threshold above this is a typo
_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min)?\s*$")
_UNIT = {"ms": 0.001, "s": 1.0, None: 1.0, "m": 60.0, "min": 60.0}


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
    log_sink: str = "stderr"
    heal: str = "pending"
    warn_blocking_rows: int | None = 100_000  # None: never warn
    refuse_blocking_rows: int | None = None  # None (the default): never refuse
    create_database: bool = True  # run creates a missing database


@dataclass(frozen=True)
class LogSettings:
    format: str
    level: str
    sink: str
    sink_endpoint: str


def load_logging(flags: Mapping[str, str | None], env: Mapping[str, str]) -> LogSettings:
    """Log settings alone, read first so that even a config error is logged as configured.

    A bad value falls back to the default here; ``load_config`` then reports it.
    """
    def pick(key: str, allowed: tuple[str, ...]) -> str:
        value = _raw(key, flags, env).value.lower()
        return value if value in allowed else _setting(key).default
    return LogSettings(pick("log_format", LOG_FORMATS), pick("log_level", LOG_LEVELS),
                       pick("log_sink", LOG_SINKS), _raw("log_sink_endpoint", flags, env).value)


def load_config(flags: Mapping[str, str | None], env: Mapping[str, str] = os.environ) -> Config:
    """Every setting, checked; a ConfigError names the flag or variable the value came from."""
    url, source = _database_url(flags, env)
    app = _raw("application_name", flags, env)
    if not app.value or len(app.value) > 63 or not app.value.isprintable():
        raise ConfigError(f"{app.source} must be 1 to 63 printable characters")
    return Config(
        target=parse_database_url(url),
        url_source=source,
        migrations_dir=resolve_migrations_dir(_raw("migrations_dir", flags, env).value),
        connect_timeout=_duration("connect_timeout", flags, env),
        lock_timeout=_duration("lock_timeout", flags, env),
        ddl_lock_timeout=_duration("ddl_lock_timeout", flags, env),
        statement_timeout=_duration("statement_timeout", flags, env),
        log_format=_choice("log_format", flags, env),
        log_level=_choice("log_level", flags, env),
        application_name=app.value,
        log_sink=_choice("log_sink", flags, env),
        heal=_choice("heal", flags, env),
        warn_blocking_rows=_rows("warn_blocking_rows", flags, env),
        refuse_blocking_rows=_rows("refuse_blocking_rows", flags, env),
        create_database=_bool("create_database", flags, env),
    )


def _setting(key: str) -> Setting:
    return next(s for s in SETTINGS if s.key == key)


@dataclass(frozen=True)
class _Raw:
    value: str
    source: str  # "--connect-timeout", "DB_INIT_CONNECT_TIMEOUT" or "the default"

    def __str__(self) -> str:
        return f"{self.source} {self.value[:30]!r}" if self.source.startswith("--") \
            else f"{self.source}={self.value[:30]!r}"


def _raw(key: str, flags: Mapping[str, str | None], env: Mapping[str, str]) -> _Raw:
    s = _setting(key)
    flag = flags.get(key)
    if flag is not None:
        return _Raw(flag, s.flag)
    if env.get(s.env):
        return _Raw(env[s.env], s.env)
    return _Raw(s.default, "the default")


def _choice(key: str, flags: Mapping[str, str | None], env: Mapping[str, str]) -> str:
    raw = _raw(key, flags, env)
    allowed = _setting(key).choices
    if raw.value.lower() not in allowed:
        raise ConfigError(f"{raw} is not one of {', '.join(allowed)}")
    return raw.value.lower()


def _database_url(flags: Mapping[str, str | None], env: Mapping[str, str]) -> tuple[str, str]:
    if flags.get("database_url"):
        return str(flags["database_url"]), "--database-url"
    for name in ("DIRECT_URL", "DATABASE_URL"):
        if env.get(name, "").strip():
            return env[name], name
    raise ConfigError("no database URL: set DIRECT_URL or DATABASE_URL (or pass --database-url)")


def _duration(key: str, flags: Mapping[str, str | None], env: Mapping[str, str]) -> float:
    raw = _raw(key, flags, env)
    m = _DURATION.match(raw.value)
    if not m:
        raise ConfigError(f"{raw} is not a duration (examples: 30, 30s, 500ms, 2m)")
    seconds = float(m[1]) * _UNIT[m[2]]
    low, high = _BOUNDS[key]
    if not low <= seconds <= high:
        raise ConfigError(f"{raw} is out of range: between {low:g}s and {high:g}s")
    return seconds


def _bool(key: str, flags: Mapping[str, str | None], env: Mapping[str, str]) -> bool:
    raw = _raw(key, flags, env)
    if raw.value.strip().lower() not in _TRUE + _FALSE:
        raise ConfigError(f"{raw} is not true or false")
    return raw.value.strip().lower() in _TRUE


def _rows(key: str, flags: Mapping[str, str | None], env: Mapping[str, str]) -> int | None:
    """A row threshold (``100000``, ``100_000``), or ``off`` (an unset guard is off too)."""
    raw = _raw(key, flags, env)
    text = raw.value.strip().replace("_", "")
    if text.lower() in ("", "off"):
        return None
    if not text.isdigit() or int(text) > _MOST_ROWS:
        raise ConfigError(f"{raw} is not a number of rows (a whole number, e.g. 100000) or off")
    return int(text)


def resolve_migrations_dir(raw: str) -> Path:
    path = Path(raw)
    if path.is_absolute() or path.exists():
        return path
    installed = Path(__file__).resolve().parent.parent / raw
    return installed if installed.exists() else path
