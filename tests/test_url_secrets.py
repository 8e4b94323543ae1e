"""No part of a password in any output, even when it holds an unencoded '/', '?', '#' or '@'.

Such a URL is cut by a URL parser in the middle of its password (Prisma's too): the pieces must
never come back as an "invalid port", a parameter, a host or a database name in a reason, a log
line, the termination message, or the fleet's events. Checked on the pure parser, through
`db-init run` and through `db-init fleet run` with the URL in a targets file's `url_env`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from jobtools import JobRun, run_job

from job.dburl import parse_database_url
from job.errors import ConfigError

# (password as typed into the URL, exit code of a run): each cut by a parser before its last "@"
PASSWORDS = [
    ("hunter2hunter2/xyz", 2),  # the issue's: "invalid port 'hunter2hun'"
    ("hunter2?hunter2xyz", 2),
    ("hunter2#hunter2/xyz", 2),
    ("hunter2?sslmode=hunter2xyz", 2),
    ("hunter2@hunter2/xyz", 3),  # parses (host "hunter2", database "xyz@..."): the connection fails
]


def _url(password: str) -> str:
    return f"postgresql://app:{password}@127.0.0.1:1/shop"


def _pieces(password: str) -> list[str]:
    """What a parser could cut out of the password; every one a secret."""
    return [p for p in re.split(r"[/?#@=]", password) if len(p) >= 3 and p != "sslmode"]


def _assert_hidden(password: str, *outputs: str) -> None:
    text = "\n".join(outputs)
    for piece in _pieces(password):
        assert piece not in text, (piece, text)
    assert "hunter2hun" not in text


@pytest.mark.parametrize("password", [p for p, _ in PASSWORDS])
def test_the_parser_never_quotes_what_comes_before_the_last_at(password: str) -> None:
    try:
        target = parse_database_url(_url(password).replace("127.0.0.1:1", "db:5432"))
    except ConfigError as err:
        _assert_hidden(password, err.reason)
        assert "percent-encoded" in err.reason
        return
    _assert_hidden(password, target.display, *target.dropped_params)


def test_what_comes_after_the_last_at_is_still_quoted() -> None:
    with pytest.raises(ConfigError, match="invalid port 'abc'"):
        parse_database_url("postgresql://app:s3cr%2Ft@db:abc/shop")
    with pytest.raises(ConfigError, match="sslmode 'sometimes'"):
        parse_database_url("postgresql://app:s3cret@db/shop?sslmode=sometimes")
    assert parse_database_url("postgresql://a:b@h/db?application_name=x%40y").display == \
        "postgresql://a:***@h/db?application_name=x@y"


def _every_output(run: JobRun, termination: Path) -> tuple[str, str, str]:
    return run.stdout, run.stderr, termination.read_text()


@pytest.mark.parametrize("password, code", PASSWORDS)
def test_a_run_shows_no_piece_of_the_password(tmp_path: Path, password: str, code: int) -> None:
    termination = tmp_path / "termination-log"
    termination.touch()
    run = run_job(_url(password), DB_INIT_TERMINATION_LOG=str(termination), DB_INIT_CONNECT_TIMEOUT="1s")
    assert run.code == code, run.stderr
    assert termination.read_text() == run.summary["reason"] + "\n"
    _assert_hidden(password, *_every_output(run, termination))


@pytest.mark.parametrize("password, code", PASSWORDS)
def test_a_fleet_shows_no_piece_of_the_password(tmp_path: Path, password: str, code: int) -> None:
    targets = tmp_path / "targets.json"
    targets.write_text(json.dumps([{"name": "shop", "url_env": "SHOP_URL", "schema": "app"}]))
    termination = tmp_path / "termination-log"
    termination.touch()
    run = run_job(None, "fleet", "run", DB_INIT_FLEET_TARGETS=str(targets), SHOP_URL=_url(password),
                  DB_INIT_TERMINATION_LOG=str(termination), DB_INIT_CONNECT_TIMEOUT="1s")
    assert run.code == code, run.stderr
    finished = run.event("fleet.finished")
    if code == 2:
        assert "percent-encoded" in run.event("target.invalid")["problem"]
    assert termination.read_text() == finished["reason"] + "\n"
    _assert_hidden(password, *_every_output(run, termination))
