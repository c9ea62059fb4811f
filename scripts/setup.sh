#!/usr/bin/env bash
# One idempotent set-up for a fresh Debian machine (run as root): Debian packages, Node 22 LTS
# (project-local when the machine's Node is older), and `npm ci` with native modules built against
# that Node. Every other script sources this file, so it must stay cheap when nothing changed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
NODE_MAJOR=22
APT_PACKAGES=(
  ca-certificates iproute2 nftables iputils-ping dnsmasq-base mosquitto mosquitto-clients
  libpcap-dev python3 make g++ procps psmisc kmod dnsutils udhcpc openssl
  librsvg2-bin device-tree-compiler
  lldpd tcpdump nmap fping tshark
  kamailio sipsak sip-tester chrony
  debootstrap systemd
  prometheus-blackbox-exporter curl
  monitoring-plugins-basic monitoring-plugins-standard
  chromium
  faketime
  rabbitmq-server
  iperf3
  postgresql
)

log() { printf '[setup] %s\n' "$*" >&2; }

install_apt() {
  local missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  # A machine with no npm at all needs Debian's Node only to fetch Node 22 from the npm registry.
  command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
  if ((${#missing[@]})); then
    log "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  # Debian starts these as system services; the lab runs its own instances inside namespaces.
  # rabbitmq-server pulls in Erlang's epmd, which Debian enables as a socket-activated service.
  for svc in postgresql mosquitto dnsmasq lldpd kamailio prometheus-blackbox-exporter rabbitmq-server epmd.socket epmd; do
    if command -v systemctl >/dev/null 2>&1 && systemctl is-enabled "$svc" >/dev/null 2>&1; then
      systemctl disable --now "$svc" >/dev/null 2>&1 || true
    fi
  done
}

node_major() { "$1" -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }

install_node() {
  local sys_node
  sys_node="$(command -v node || true)"
  if [[ -n "$sys_node" && "$(node_major "$sys_node")" == "$NODE_MAJOR" ]]; then
    NODE_HOME="$(dirname "$(dirname "$(readlink -f "$sys_node")")")"
    return
  fi
  NODE_HOME="$ROOT/.tools/node"
  if [[ "$(node_major "$NODE_HOME/bin/node")" != "$NODE_MAJOR" ]]; then
    local arch
    case "$(uname -m)" in
      x86_64) arch=x64 ;;
      aarch64 | arm64) arch=arm64 ;;
      *) log "unsupported architecture $(uname -m)"; exit 1 ;;
    esac
    log "installing Node $NODE_MAJOR (node-linux-$arch) into $NODE_HOME"
    local tmp
    tmp="$(mktemp -d)"
    (cd "$tmp" && npm pack --silent "node-linux-$arch@$NODE_MAJOR" >/dev/null)
    rm -rf "$NODE_HOME" && mkdir -p "$NODE_HOME"
    tar -xzf "$tmp"/node-linux-*.tgz -C "$NODE_HOME" --strip-components=1
    rm -rf "$tmp"
  fi
}

install_modules() {
  export PATH="$NODE_HOME/bin:$PATH"
  # The machine's npm config points nodedir at the system Node's headers; native modules must be
  # built against Node 22's own headers or they fail to load with an ABI mismatch.
  export npm_config_nodedir="$NODE_HOME"
  local stamp="$ROOT/node_modules/.netprobe-setup"
  local want
  want="$(node -v) $(sha256sum "$ROOT/package-lock.json" | cut -c1-16)"
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then return; fi
  log "npm ci (native modules against Node $(node -v))"
  (cd "$ROOT" && npm ci --no-audit --no-fund --loglevel=error)
  # Native builds must never be skipped silently: load every native module once.
  (cd "$ROOT" && node -e '
    for (const m of ["raw-socket", "pcap", "better-sqlite3"]) {
      try { const x = require(m); if (m === "better-sqlite3") new x(":memory:").close(); }
      catch (e) { console.error(`[setup] native module ${m} failed to load: ${e.message}`); process.exit(1); }
    }')
  echo "$want" >"$stamp"
}

build_dist() {
  # The bundled appliance (scripts/build.ts) that services/probe/bin/netprobe runs; rebuilt
  # only when a source file is newer than the last build.
  local stamp="$ROOT/dist/.built"
  if [[ -f "$stamp" && -z "$(find "$ROOT/services/probe/src" "$ROOT/services/contract/src" "$ROOT/package-lock.json" "$ROOT/scripts/build.ts" -newer "$stamp" -print -quit)" ]]; then
    return
  fi
  log "building dist/ (scripts/build.ts: one bundled file)"
  (cd "$ROOT" && npm run --silent build)
}

install_apt
install_node
install_modules
build_dist
export PATH="$NODE_HOME/bin:$PATH" npm_config_nodedir="$NODE_HOME"
