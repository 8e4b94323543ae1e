"""Settings of ``db-init fleet``: their own table, since they mean nothing to a single run.

A setting may be read from several variables, first set wins: the task's place comes from Cloud
Run's ``CLOUD_RUN_TASK_INDEX``/``CLOUD_RUN_TASK_COUNT`` or from a Kubernetes Indexed Job's
``JOB_COMPLETION_INDEX``, whose count the manifest gives in ``DB_INIT_FLEET_TASK_COUNT`` (Kubernetes
sets no variable for it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from job.config import Setting
from job.errors import ConfigError

FLEET_SETTINGS: tuple[Setting, ...] = (
    Setting("targets", "DB_INIT_FLEET_TARGETS", "",
            "targets file, JSON or TOML: one entry per database (README, Fleet)", "PATH"),
    Setting("group", "DB_INIT_FLEET_GROUP", "", "only the targets of this group (e.g. canary); default all",
            "GROUP"),
    Setting("task_index", "CLOUD_RUN_TASK_INDEX, JOB_COMPLETION_INDEX", "0",
            "this task's index, from 0; set by Cloud Run and Indexed Jobs", "N"),
    Setting("task_count", "CLOUD_RUN_TASK_COUNT, DB_INIT_FLEET_TASK_COUNT", "1",
            "how many tasks share the targets (an Indexed Job's completions)", "N"),
    Setting("concurrency", "DB_INIT_FLEET_CONCURRENCY", "4",
            "targets a task runs at once, each on its own connection", "N"),
    Setting("max_failed", "DB_INIT_FLEET_MAX_FAILED", "0",
            "failed targets a task tolerates and still exits 0 (their failures are still logged)", "N"),
)

_BOUNDS = {"task_index": (0, 9999), "task_count": (1, 10000), "concurrency": (1, 32),
           "max_failed": (0, 100000)}


@dataclass(frozen=True)
class FleetConfig:
    targets: Path
    group: str | None
    task_index: int
    task_count: int
    concurrency: int
    max_failed: int


def _raw(s: Setting, flags: Mapping[str, str | None], env: Mapping[str, str]) -> tuple[str, str]:
    flag = flags.get(s.key)
    if flag is not None:
        return flag, s.flag
    for name in s.env.split(", "):
        if env.get(name, "").strip():
            return env[name].strip(), name
    return s.default, "the default"


def _int(s: Setting, flags: Mapping[str, str | None], env: Mapping[str, str]) -> int:
    value, source = _raw(s, flags, env)
    low, high = _BOUNDS[s.key]
    if not value.isdigit() or not low <= int(value) <= high:
        raise ConfigError(f"{source}={value[:20]!r} is not a whole number from {low} to {high}")
    return int(value)


def load_fleet_config(flags: Mapping[str, str | None], env: Mapping[str, str]) -> FleetConfig:
    by_key = {s.key: s for s in FLEET_SETTINGS}
    path, _ = _raw(by_key["targets"], flags, env)
    if not path:
        raise ConfigError("no targets file: set DB_INIT_FLEET_TARGETS (or pass --targets)")
    group, _ = _raw(by_key["group"], flags, env)
    index, count = _int(by_key["task_index"], flags, env), _int(by_key["task_count"], flags, env)
    if index >= count:
        _, index_source = _raw(by_key["task_index"], flags, env)
        raise ConfigError(f"task index {index} (from {index_source}) is not below the task count {count}:"
                          " set DB_INIT_FLEET_TASK_COUNT to the Indexed Job's completions")
    return FleetConfig(Path(path), group or None, index, count, _int(by_key["concurrency"], flags, env),
                       _int(by_key["max_failed"], flags, env))
