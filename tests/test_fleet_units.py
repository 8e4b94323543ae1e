"""Fleet mode without a server: sharding, the targets file, settings, the exit-code policy, README."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from job import shard
from job.errors import PLAN_CHANGES_PENDING, ConfigError, ExitCode
from job.fleet import SEVERITY, TargetResult, most_severe, task_exit_code
from job.fleetconfig import FLEET_SETTINGS, load_fleet_config
from job.targets import TargetsError, load_targets

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()
NAMES = [f"shop-{n:03d}" for n in range(200)]


def assignment(names: list[str], count: int) -> dict[str, int]:
    return {n: i for i in range(count) for n in shard.share(names, index=i, count=count)}


@pytest.mark.parametrize("count", [1, 3, 8])
def test_every_target_goes_to_exactly_one_task(count: int) -> None:
    shares = [shard.share(NAMES, index=i, count=count) for i in range(count)]
    assert sorted(n for s in shares for n in s) == sorted(NAMES)
    assert all(s == [n for n in NAMES if n in set(s)] for s in shares), "file order kept"
    sizes = [len(s) for s in shares]
    assert min(sizes) >= 0.6 * len(NAMES) / count, sizes  # balanced by chance, not wildly


def test_no_target_moves_when_the_list_grows_at_the_end_or_changes_elsewhere() -> None:
    before = assignment(NAMES, 4)
    grown = NAMES + [f"new-{n}" for n in range(50)]
    assert {n: t for n, t in assignment(grown, 4).items() if n in before} == before
    edited = [f"inserted-{n}" for n in range(7)] + list(reversed(NAMES[10:])) + NAMES[:5]  # 5 removed
    assert {n: t for n, t in assignment(edited, 4).items() if n in before} == \
        {n: t for n, t in before.items() if n in edited}


def test_a_new_task_count_moves_about_one_target_in_count() -> None:
    before, after = assignment(NAMES, 4), assignment(NAMES, 5)
    moved = sum(before[n] != after[n] for n in NAMES)
    assert 0.1 * len(NAMES) < moved < 0.3 * len(NAMES)  # ~1/5; index mod count would move ~4/5
    assert all(after[n] == 4 for n in NAMES if before[n] != after[n]), "only to the new task"


def test_the_assignment_is_the_same_in_every_process() -> None:
    assert Counter(assignment(NAMES, 3).values()) == Counter({0: 73, 1: 62, 2: 65})  # sha256, not hash()


def write(tmp_path: Path, doc: object, name: str = "targets.json") -> Path:
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return path


def test_targets_file_json_and_toml_with_url_env_schema_and_group(tmp_path: Path) -> None:
    env = {"EU_URL": "postgresql://app:s3cret-eu@db-eu:5432/shop"}
    doc = [{"name": "eu", "url_env": "EU_URL", "schema": "app", "group": "canary"},
           {"name": "us", "url": "postgresql://app:pw-us-9@db-us/shop?schema=x"}]
    (eu, us) = load_targets(write(tmp_path, {"targets": doc}), env)
    assert (eu.name, eu.group, eu.database.schema, eu.source) == ("eu", "canary", "app", "EU_URL")
    assert "s3cret-eu" not in eu.database.display and eu.database.conninfo["host"] == "db-eu"
    assert (us.group, us.database.schema, us.source) == ("default", "x", "url")
    toml = '[[targets]]\nname = "eu"\nurl_env = "EU_URL"\n\n[[targets]]\nname = "us"\nurl = "postgresql://h/d"\n'
    assert [t.name for t in load_targets(write(tmp_path, toml, "t.toml"), env)] == ["eu", "us"]


def test_every_bad_entry_is_one_line_and_no_password_is_shown(tmp_path: Path) -> None:
    doc = [{"name": "ok", "url": "postgresql://a:pw-ok-1234@h/d"},
           {"name": "both", "url": "postgresql://a:pw-both-5678@h/d", "url_env": "X"},
           {"name": "bad scheme", "url": "mysql://a:pw-mysql-999@h/d"},
           {"name": "nourl"},
           {"name": "unset", "url_env": "NOT_SET_ANYWHERE"},
           {"name": "ok", "url": "postgresql://h/d2"},
           {"name": "typo", "url": "postgresql://h/d", "shema": "x"},
           {"name": "longschema", "url": "postgresql://a:pw-long-4321@h/d", "schema": "s" * 70},
           "just a string"]
    with pytest.raises(TargetsError) as caught:
        load_targets(write(tmp_path, doc), {})
    problems = caught.value.problems
    assert len(problems) == 8, problems
    text = "\n".join(problems) + str(caught.value)
    for expected in ("entry 1 ('both'): give exactly one of url and url_env", "entry 3 ('nourl')",
                     "entry 2 ('bad scheme'): name must be", "'NOT_SET_ANYWHERE': the variable is not set",
                     "entry 5 ('ok'): name 'ok' already used by entry 0", "unknown key(s) shema",
                     "longer than 63 bytes", "entry 8: not an object"):
        assert expected in text, (expected, text)
    assert "pw-" not in text and "\n" not in str(caught.value)


@pytest.mark.parametrize("text, expected", [
    ("{not json", "is not valid JSON (line 1)"), ('{"targets": 3}', "expected a list of targets")])
def test_an_unreadable_targets_file_is_one_line(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(expected)):
        load_targets(write(tmp_path, text), {})


def test_task_index_and_count_from_cloud_run_or_an_indexed_job() -> None:
    cloud_run = load_fleet_config({}, {"DB_INIT_FLEET_TARGETS": "t.json", "CLOUD_RUN_TASK_INDEX": "2",
                                       "CLOUD_RUN_TASK_COUNT": "5"})
    assert (cloud_run.task_index, cloud_run.task_count, cloud_run.concurrency) == (2, 5, 4)
    indexed = {"DB_INIT_FLEET_TARGETS": "t.json", "JOB_COMPLETION_INDEX": "3",
               "DB_INIT_FLEET_TASK_COUNT": "4"}
    k8s = load_fleet_config({"group": "canary"}, indexed)
    assert (k8s.task_index, k8s.task_count, k8s.group) == (3, 4, "canary")
    expected = ("task index 3 (from JOB_COMPLETION_INDEX) is not below the task count 1:"
                " set DB_INIT_FLEET_TASK_COUNT")
    with pytest.raises(ConfigError, match=re.escape(expected)):
        load_fleet_config({}, {"DB_INIT_FLEET_TARGETS": "t.json", "JOB_COMPLETION_INDEX": "3"})
    with pytest.raises(ConfigError, match="DB_INIT_FLEET_CONCURRENCY='0' is not a whole number from 1 to 32"):
        load_fleet_config({}, {"DB_INIT_FLEET_TARGETS": "t.json", "DB_INIT_FLEET_CONCURRENCY": "0"})
    with pytest.raises(ConfigError, match="no targets file: set DB_INIT_FLEET_TARGETS"):
        load_fleet_config({}, {})


def results(*codes: int) -> list[TargetResult]:
    return [TargetResult(f"t{n}", "default", code, 1.0) for n, code in enumerate(codes)]


@pytest.mark.parametrize("codes, max_failed, expected", [
    ((0, 0), 0, (0, 0)),
    ((0, 5, 3), 0, (3, 0)),  # retryable first: a retry may still heal target 2
    ((0, 5, 6), 0, (6, 0)),
    ((5, 2), 0, (5, 0)),
    ((0, 5), 1, (0, 1)),  # tolerated: logged, exit 0
    ((0, 5, 3), 1, (3, 0)),  # two failed, one tolerated: not enough
    ((7, 0), 5, (7, 0)),  # an interrupted task is never "tolerated": its targets are work left
])
def test_task_exit_code_policy(codes: tuple[int, ...], max_failed: int, expected: tuple[int, int]) -> None:
    assert task_exit_code(results(*codes), max_failed) == expected


def test_the_severity_order_names_every_outcome_once() -> None:
    assert sorted(SEVERITY) == sorted([*(int(c) for c in ExitCode if c != ExitCode.OK), PLAN_CHANGES_PENDING])
    assert most_severe([PLAN_CHANGES_PENDING, ExitCode.DRIFT]) == ExitCode.DRIFT
    documented = re.search(r"most severe first: (.+)\.", README)
    assert documented, "README states the order"
    assert [int(c) for c in re.findall(r"\b(\d+)\b", documented[1])] == list(SEVERITY)


def test_readme_fleet_settings_table_matches_the_code() -> None:
    section = README.split("## Fleet\n", 1)[1].split("\n## ", 1)[0]
    rows = [[c.strip() for c in ln.strip("|").split("|")] for ln in section.splitlines()
            if ln.startswith("| `--")]
    assert [r[0].strip("`") for r in rows] == [s.flag for s in FLEET_SETTINGS]
    assert [r[1].replace("`", "") for r in rows] == [s.env for s in FLEET_SETTINGS]
    for row, s in zip(rows, FLEET_SETTINGS, strict=True):
        assert row[2].startswith(f"`{s.default}`") or not s.default, row
