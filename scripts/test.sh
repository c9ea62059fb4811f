#!/usr/bin/env bash
# Every test: set-up (idempotent), static checks (types, lint, format), unit tests, then the lab
# tests against real peers in network namespaces (root needed). `.ci/run` calls exactly this.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=setup.sh
source "$ROOT/scripts/setup.sh"
cd "$ROOT"
npm run --silent check
npx vitest run "$@"
