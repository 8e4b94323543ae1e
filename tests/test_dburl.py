"""Prisma-style URLs become libpq conninfo; secrets never show."""

from __future__ import annotations

import pytest

from job.dburl import parse_database_url
from job.errors import ConfigError
from job.redact import redact


def test_plain_url() -> None:
    t = parse_database_url("postgresql://app:s3cr%40t@db.example.com:6432/shop")
    assert t.conninfo == {"user": "app", "password": "s3cr@t", "host": "db.example.com",
                          "port": "6432", "dbname": "shop"}
    assert t.schema == "public"
    assert not t.pgbouncer
    assert "s3cr" not in t.display
    assert t.display == "postgresql://app:***@db.example.com:6432/shop"


def test_prisma_only_parameters_are_translated_or_dropped() -> None:
    t = parse_database_url(
        "postgres://u:p@h/db?schema=shop_app&connection_limit=1&pool_timeout=0&socket_timeout=5"
        "&statement_cache_size=0&sslaccept=strict&sslmode=require&sslcert=/ca.pem&pgbouncer=true"
        "&application_name=app&foo=bar")
    assert t.schema == "shop_app"
    assert t.pgbouncer
    assert t.conninfo["sslmode"] == "require"
    assert t.conninfo["sslrootcert"] == "/ca.pem"  # Prisma's sslcert is the CA certificate
    assert t.conninfo["application_name"] == "app"
    for dropped in ("schema", "connection_limit", "pool_timeout", "socket_timeout",
                    "statement_cache_size", "sslaccept", "pgbouncer", "foo"):
        assert dropped not in t.conninfo
    assert "foo (unknown)" in t.dropped_params


def test_unix_socket_host_parameter() -> None:
    t = parse_database_url("postgresql://u:p@localhost/db?host=/cloudsql/proj:region:inst")
    assert t.conninfo["host"] == "/cloudsql/proj:region:inst"
    t2 = parse_database_url("postgresql://u@/db?host=/var/run/postgresql")
    assert t2.conninfo == {"user": "u", "host": "/var/run/postgresql", "dbname": "db"}


def test_multiple_hosts_and_ipv6() -> None:
    t = parse_database_url("postgresql://u:p@h1:5433,[::1]:5434,h3/db")
    assert t.conninfo["host"] == "h1,::1,h3"
    assert t.conninfo["port"] == "5433,5434,5432"


@pytest.mark.parametrize("url, words", [
    ("mysql://u:p@h/db", "scheme"),
    ("not a url", "not a URL"),
    ("postgresql://u:p@h:99999/db", "invalid port"),
    ("postgresql://u:p@h:abc/db", "invalid port"),
    ("postgresql://u:p@h/db?pgbouncer=maybe", "true or false"),
    ("postgresql://u:p@h/db?sslmode=sometimes", "sslmode"),
    ("postgresql://u:p@h/db?schema=", "schema is empty"),
    ("postgresql://u:p@h/db?schema=" + "x" * 64, "63 bytes"),
    ("postgresql://u:p@h/db?sslidentity=id.p12", "PKCS#12"),
])
def test_bad_urls_fail_with_one_clear_line(url: str, words: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_database_url(url)
    assert words in err.value.reason
    assert "\n" not in err.value.reason


def test_password_is_registered_for_redaction() -> None:
    parse_database_url("postgresql://u:Very%2FSecret-42@h/db")
    assert redact("auth failed for Very/Secret-42 and Very%2FSecret-42") == "auth failed for *** and ***"


def test_redaction_of_unregistered_credentials() -> None:
    assert redact("postgresql://bob:hunter2@x/y") == "postgresql://bob:***@x/y"
    assert redact("host=x password='a b' user=u") == "host=x password=*** user=u"
    assert redact("password=hunter2 dbname=x") == "password=*** dbname=x"
