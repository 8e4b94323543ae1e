"""The fleet's targets file: one entry per database, checked whole before anything connects.

JSON (``.json``) or TOML (``.toml``, ``[[targets]]``), both read by the standard library, so the
image gains no dependency; JSON is what ``terraform output -json``, ``jq`` and a Kubernetes Secret
produce, TOML is easier to write by hand. Each entry::

    {"name": "shop-eu", "url_env": "SHOP_EU_URL", "schema": "app", "group": "canary"}

``name`` is the stable identity (sharding hashes it, logs carry it); exactly one of ``url`` and
``url_env`` says where the database is; ``schema`` overrides the URL's ``?schema=``; ``group``
defaults to ``default``. Every bad entry is one line of the error, none ever shows a password.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from job.dburl import DatabaseTarget, parse_database_url
from job.errors import ConfigError
from job.redact import redact

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")  # fits a log label and a Kubernetes name part
_KEYS = {"name", "url", "url_env", "schema", "group"}
DEFAULT_GROUP = "default"


@dataclass(frozen=True)
class Target:
    name: str
    group: str
    database: DatabaseTarget  # parsed and checked; ``display`` is the URL with its password masked
    source: str  # where the URL came from: "url" or the variable's name


class TargetsError(ConfigError):
    """The file is unusable: ``problems`` holds one line per bad entry."""

    def __init__(self, path: Path, problems: list[str]) -> None:
        super().__init__(f"{path}: {len(problems)} bad target entr{'y' if len(problems) == 1 else 'ies'}:"
                         f" {problems[0]}" + (" (and more, each logged)" if len(problems) > 1 else ""))
        self.problems = problems


def load_targets(path: Path, env: Mapping[str, str]) -> tuple[Target, ...]:
    entries = _read(path)
    problems: list[str] = []
    targets: list[Target] = []
    seen: dict[str, int] = {}
    for index, entry in enumerate(entries):
        label = f"entry {index}"
        if isinstance(entry, dict) and isinstance(entry.get("name"), str):
            label += f" ({entry['name'][:40]!r})"
        try:
            target = _target(entry, env)
        except ConfigError as err:
            problems.append(redact(f"{label}: {err.reason}"))
            continue
        if target.name in seen:
            problems.append(f"{label}: name {target.name!r} already used by entry {seen[target.name]}")
            continue
        seen[target.name] = index
        targets.append(target)
    if problems:
        raise TargetsError(path, problems)
    return tuple(targets)


def _read(path: Path) -> list[Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"targets file {path}: cannot read it ({type(err).__name__})") from None
    try:
        doc: Any = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as err:
        # The parser's message quotes no value; the position is enough to find the typo.
        where = f"line {err.lineno}" if isinstance(err, json.JSONDecodeError) else str(err).split("(")[-1]
        raise ConfigError(f"targets file {path} is not valid {'TOML' if path.suffix == '.toml' else 'JSON'}"
                          f" ({where.rstrip(')')})") from None
    entries = doc.get("targets") if isinstance(doc, dict) else doc
    if not isinstance(entries, list):
        raise ConfigError(f"targets file {path}: expected a list of targets (or {{\"targets\": [...]}})")
    return entries


def _target(entry: object, env: Mapping[str, str]) -> Target:
    if not isinstance(entry, dict):
        raise ConfigError("not an object with name and url or url_env")
    unknown = sorted(set(entry) - _KEYS)
    if unknown:
        raise ConfigError(f"unknown key(s) {', '.join(map(str, unknown))[:80]};"
                          f" expected {', '.join(sorted(_KEYS))}")
    for key in _KEYS & set(entry):
        if not isinstance(entry[key], str):
            raise ConfigError(f"{key} must be a string")
    name = entry.get("name", "")
    if not _NAME.match(name):
        raise ConfigError("name must be 1-63 letters, digits, '.', '_' or '-', starting with a letter"
                          " or digit")
    group = entry.get("group", DEFAULT_GROUP)
    if not _NAME.match(group):
        raise ConfigError("group must be 1-63 letters, digits, '.', '_' or '-'")
    if ("url" in entry) == ("url_env" in entry):
        raise ConfigError("give exactly one of url and url_env")
    if "url" in entry:
        url, source = entry["url"], "url"
    else:
        source = entry["url_env"]
        url = env.get(source, "")
        if not url.strip():
            raise ConfigError(f"url_env {source[:60]!r}: the variable is not set or empty")
    if "schema" in entry:  # appended: the URL's last ?schema= wins, and is checked as any other
        # A "?" before the last "@" is the password's, not the query's (dburl keeps it secret).
        url += ("&" if "?" in url.rpartition("@")[2] else "?") + "schema=" + quote(entry["schema"], safe="")
    return Target(name, group, parse_database_url(url), source)
