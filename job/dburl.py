"""Read a Prisma-style PostgreSQL URL and turn it into what libpq accepts.

Prisma's query engine accepts parameters libpq rejects (``schema``,
``pgbouncer``, ``connection_limit``...) and silently drops unknown ones, so the
same ``DATABASE_URL`` the app uses would fail in libpq as it is.  Here each
parameter is translated, kept or dropped on purpose.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote, unquote_plus

from job.errors import ConfigError
from job.redact import MASK, register_secret

# Prisma parameters that mean nothing to a one-shot job: dropped.
_PRISMA_ONLY = frozenset({
    "connection_limit", "pool_timeout", "socket_timeout", "statement_cache_size",
    "max_connection_lifetime", "max_idle_connection_lifetime", "sslaccept",
})
# libpq URI parameters passed through as they are.
_LIBPQ = frozenset({
    "host", "hostaddr", "port", "dbname", "user", "password", "passfile", "channel_binding",
    "connect_timeout", "client_encoding", "options", "application_name",
    "fallback_application_name", "keepalives", "keepalives_idle", "keepalives_interval",
    "keepalives_count", "tcp_user_timeout", "gssencmode", "sslmode", "sslkey", "sslpassword",
    "sslcertmode", "sslrootcert", "sslcrl", "sslcrldir", "sslsni", "requirepeer",
    "ssl_min_protocol_version", "ssl_max_protocol_version", "krbsrvname", "gsslib",
    "gssdelegation", "service", "target_session_attrs", "load_balance_hosts", "require_auth",
    "sslnegotiation",
})
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}
MAX_IDENTIFIER_BYTES = 63  # NAMEDATALEN - 1: PostgreSQL would silently truncate longer names


@dataclass(frozen=True)
class DatabaseTarget:
    """Where to connect, what to migrate, and how to print it safely."""

    conninfo: dict[str, str]  # keyword -> value, for psycopg.connect(**conninfo)
    schema: str
    pgbouncer: bool
    display: str  # the URL with its password masked, for logs
    dropped_params: tuple[str, ...] = field(default=())


def parse_database_url(url: str) -> DatabaseTarget:
    url = url.strip()
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ConfigError("database URL is not a URL: expected postgresql://USER:PASSWORD@HOST:PORT/DB")
    if scheme.lower() not in ("postgresql", "postgres"):
        raise ConfigError(f"database URL scheme {scheme[:20]!r} is not supported: use postgresql://")
    # Before anything is parsed, everything ahead of the last "@" may be the userinfo: a password
    # holding an unencoded "/", "?" or "#" would otherwise surface, cut, as a port or a parameter.
    secret = _Secret(*rest.rpartition("@")[::2])
    netloc, _, tail = rest.partition("/")
    path, _, query = tail.partition("?")
    if "?" in netloc:  # postgresql://host?host=/cloudsql/... (no path)
        netloc, _, query = netloc.partition("?")
    userinfo, at, hostlist = netloc.rpartition("@")
    if not at:
        userinfo, hostlist = "", netloc

    conninfo: dict[str, str] = {}
    user, has_pw, password = userinfo.partition(":")
    if password:
        register_secret(unquote(password))
    if user:
        conninfo["user"] = unquote(user)
    if has_pw and password:
        conninfo["password"] = unquote(password)
    conninfo.update(_hosts(hostlist, secret))
    dbname = unquote(path)
    if dbname:
        conninfo["dbname"] = dbname

    schema, pgbouncer, dropped = "public", False, []
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key == "schema":
            schema = value
        elif key == "pgbouncer":
            pgbouncer = _bool(key, value, secret)
        elif key == "sslcert":
            # Prisma's sslcert is the server's CA certificate, which libpq calls sslrootcert.
            conninfo["sslrootcert"] = value
        elif key == "sslidentity":
            raise ConfigError("sslidentity (a PKCS#12 bundle) is not supported by libpq: "
                              "give the client certificate as sslkey plus a PEM sslrootcert")
        elif key == "sslmode":
            conninfo["sslmode"] = _sslmode(value, secret)
        elif key in _LIBPQ:
            if key in ("password", "sslpassword"):
                register_secret(value)
            conninfo[key] = value
        else:
            # Prisma-only or unknown: Prisma ignores unknown parameters, and so do we.
            dropped.append(key if key in _PRISMA_ONLY else f"{key} (unknown)" if secret.shows(key)
                           else "a parameter not shown (it may be part of the password)")
    _check_schema(schema)
    pgbouncer = pgbouncer or _supabase_transaction_pooler(conninfo)
    return DatabaseTarget(conninfo=conninfo, schema=schema, pgbouncer=pgbouncer,
                          display=_display(scheme, user, has_pw, *(p if secret.shows(p) else MASK
                                                                    for p in (hostlist, path, query))),
                          dropped_params=tuple(dropped))


@dataclass(frozen=True)
class _Secret:
    """The URL split at its last "@": what an error may quote comes from after it only."""

    before: str  # possibly user and password (empty without an "@"): never quoted
    after: str

    def shows(self, value: str) -> bool:
        if not self.before or not value:
            return True
        seen_after = value in self.after or value in unquote_plus(self.after)
        return seen_after and value not in self.before and value not in unquote(self.before)

    def quote(self, value: str, limit: int) -> str:
        """`` 'value'`` for an error message, or a note saying why it is not shown."""
        if self.shows(value):
            return f" {value[:limit]!r}"
        return (" (not shown: it may be part of the password; a '/', '?' or '#' in the password must be"
                " percent-encoded)")


def _hosts(hostlist: str, secret: _Secret) -> dict[str, str]:
    """``h1:5432,h2`` -> libpq's comma-separated host and port lists."""
    if not hostlist:
        return {}
    hosts, ports = [], []
    for item in hostlist.split(","):
        if item.startswith("["):  # [::1]:5432
            host, _, after = item[1:].partition("]")
            port = after.removeprefix(":")
        else:
            host, _, port = item.partition(":")
        if port and not (port.isdigit() and 0 < int(port) < 65536):
            raise ConfigError(f"database URL has an invalid port{secret.quote(port, 10)}")
        hosts.append(unquote(host))
        ports.append(port)
    out = {"host": ",".join(hosts)}
    if any(ports):
        out["port"] = ",".join(p or "5432" for p in ports)
    return out


def _supabase_transaction_pooler(conninfo: dict[str, str]) -> bool:
    """Supavisor's transaction mode listens on 6543 (session mode on 5432)."""
    hosts = conninfo.get("host", "").split(",")
    ports = conninfo.get("port", "").split(",")
    return any(h.endswith(".pooler.supabase.com") and p == "6543" for h, p in zip(hosts, ports, strict=False))


def _bool(key: str, value: str, secret: _Secret) -> bool:
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise ConfigError(f"URL parameter {key} must be true or false, not{secret.quote(value, 20)}")


def _sslmode(value: str, secret: _Secret) -> str:
    allowed = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
    if value not in allowed:
        raise ConfigError(f"URL parameter sslmode{secret.quote(value, 20)} is not one of"
                          f" {', '.join(allowed)}")
    return value


def _check_schema(schema: str) -> None:
    if not schema:
        raise ConfigError("URL parameter schema is empty")
    if "\x00" in schema:
        raise ConfigError("URL parameter schema contains a NUL character")
    if "$db_init_guard$" in schema:  # the dollar-quote tag of job.statements.drop_if_empty
        raise ConfigError("URL parameter schema contains the reserved text $db_init_guard$")
    if len(schema.encode()) > MAX_IDENTIFIER_BYTES:
        raise ConfigError(f"URL parameter schema is longer than {MAX_IDENTIFIER_BYTES} bytes")


def _display(scheme: str, user: str, has_pw: str, hostlist: str, path: str, query: str) -> str:
    cred = f"{user}:{MASK}@" if has_pw else (f"{user}@" if user else "")
    pairs = [(k, MASK if k in ("password", "sslpassword") else v)
             for k, v in parse_qsl(query, keep_blank_values=True)]
    q = MASK if query == MASK else "&".join(f"{k}={v}" for k, v in pairs)
    return f"{scheme}://{cred}{hostlist}/{path}" + (f"?{q}" if q else "")
