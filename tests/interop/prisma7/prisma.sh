#!/usr/bin/env bash
# The real Prisma 7 CLI with our config and engine, from any directory:
#   DATABASE_URL=... tests/interop/prisma7/prisma.sh migrate status
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
: "${DATABASE_URL:?DATABASE_URL must be set: prisma.config.ts reads it}"
# No telemetry or update check (they would call out); the engine binary is our WASM stand-in.
export CHECKPOINT_DISABLE=1 PRISMA_HIDE_UPDATE_MESSAGE=1 PRISMA_SCHEMA_ENGINE_BINARY="$here/schema-engine.cjs"
exec node "$here/node_modules/prisma/build/index.js" "$@" --config "$here/prisma.config.ts"
