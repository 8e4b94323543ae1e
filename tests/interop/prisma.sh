#!/usr/bin/env bash
# The real Prisma CLI with our config, from any directory: DATABASE_URL=... tests/interop/prisma.sh migrate status
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
: "${DATABASE_URL:?DATABASE_URL must be set: the contract reads it}"
# No telemetry or update check (they would call out), and the stand-in for the native engine binary.
export CHECKPOINT_DISABLE=1 PRISMA_HIDE_UPDATE_MESSAGE=1 PRISMA_SCHEMA_ENGINE_BINARY="$here/schema-engine-stub.cjs"
exec node --require "$here/preload.cjs" "$here/node_modules/prisma/build/index.js" "$@" --config "$here/prisma.config.ts"
