#!/usr/bin/env bash
# The product's main job in the simulated branch office: builds the lab (idempotent), runs the
# probe inside it and shows the LED panel, the last results and what headquarters receives.
# Ctrl-C stops the probe and removes the lab. Extra arguments go to `netprobe lab demo`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=setup.sh
source "$ROOT/scripts/setup.sh"
exec "$ROOT/services/probe/bin/netprobe" lab demo "$@"
