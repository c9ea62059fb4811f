#!/usr/bin/env bash
# Installs netprobe on Raspberry Pi OS (bookworm) or Debian 12, as root:
#   Debian packages, Node 22 in /opt/netprobe/node, the service (an `npm pack` tarball) with its
#   native modules in /opt/netprobe/releases/<version>-<hash> (/opt/netprobe/current points at it),
#   the `netprobe` command, the `netprobe` system user, /etc/netprobe/netprobe.yaml (a template,
#   never overwritten), the systemd unit, the hardware-watchdog setting, and the LED overlay with
#   its config.txt block. Idempotent: run it again to repair or upgrade. Undo with uninstall.sh.
#
# Usage: install.sh [--package netprobe-X.Y.Z.tgz] [--lockfile package-lock.json]
#                   [--node DIR|node-v22…-linux-ARCH.tar.xz] [--no-start]
#   --package  the release tarball (default: `npm pack` of the checkout this script is in)
#   --lockfile the release's package-lock.json: exact dependency versions (`npm ci`), and an
#              install from npm's cache alone with npm_config_offline=true (default: the
#              checkout's lockfile when packing a checkout, else the tarball's ranges)
#   --node     a Node 22 directory or official tarball (default: keep an installed Node 22, else
#              download the latest 22.x for this architecture from nodejs.org, checksum verified)
#   --no-start install and enable, but do not start or restart anything (also the default when
#              systemd is not running, e.g. in a chroot or an image build)
#   --print-apt-packages  print the Debian packages this script installs, and exit
set -euo pipefail

APT_PACKAGES=(ca-certificates curl xz-utils systemd libpcap0.8 libpcap-dev python3 make g++ device-tree-compiler)
NODE_MAJOR=22
PREFIX=/opt/netprobe
SERVICE_USER=netprobe
CONFIG_DIR=/etc/netprobe
STATE_DIR=/var/lib/netprobe
UNIT=/etc/systemd/system/netprobe.service
WATCHDOG_CONF=/etc/systemd/system.conf.d/netprobe-watchdog.conf
UDEV_RULES=/etc/udev/rules.d/60-netprobe-leds.rules
BIN=/usr/local/bin/netprobe
BEGIN_MARK="# BEGIN netprobe (managed by netprobe install.sh)"
END_MARK="# END netprobe"

log() { printf '[netprobe install] %s\n' "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}

package=""
lockfile=""
node_src=""
no_start=0
while (($#)); do
  case "$1" in
    --print-apt-packages)
      printf '%s\n' "${APT_PACKAGES[@]}"
      exit 0
      ;;
    --package) package="${2:?--package needs a file}"; shift 2 ;;
    --lockfile) lockfile="${2:?--lockfile needs a file}"; shift 2 ;;
    --node) node_src="${2:?--node needs a directory or tarball}"; shift 2 ;;
    --no-start) no_start=1; shift ;;
    -h | --help)
      sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
      exit 0
      ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
done

[[ $(id -u) == 0 ]] || die "run as root (sudo $0)"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
[[ -d /run/systemd/system ]] || no_start=1
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

install_apt() {
  local missing=() p
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  log "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

node_version() { [[ -x "$1/bin/node" ]] && "$1/bin/node" -v 2>/dev/null || true; }

install_node() {
  local have want src="$tmp/node"
  have="$(node_version "$PREFIX/node")"
  if [[ -z "$node_src" ]]; then
    [[ "$have" == v$NODE_MAJOR.* ]] && return 0
    local arch sums file
    case "$(dpkg --print-architecture)" in
      arm64) arch=arm64 ;;
      armhf) arch=armv7l ;;
      amd64) arch=x64 ;;
      *) die "no Node $NODE_MAJOR build for $(dpkg --print-architecture)" ;;
    esac
    log "downloading Node $NODE_MAJOR (linux-$arch) from nodejs.org"
    sums="$(curl -fsSL "https://nodejs.org/dist/latest-v$NODE_MAJOR.x/SHASUMS256.txt")"
    file="$(awk -v a="linux-$arch.tar.xz" '$2 ~ "^node-v[0-9.]+-" a "$" { print $2 }' <<<"$sums")"
    [[ -n "$file" ]] || die "nodejs.org lists no linux-$arch tarball for Node $NODE_MAJOR"
    curl -fsSL -o "$tmp/$file" "https://nodejs.org/dist/latest-v$NODE_MAJOR.x/$file"
    (cd "$tmp" && grep " $file\$" <<<"$sums" | sha256sum -c --quiet -) || die "checksum mismatch for $file"
    node_src="$tmp/$file"
  fi
  if [[ -d "$node_src" ]]; then
    src="$node_src"
  else
    mkdir -p "$src"
    tar -xf "$node_src" -C "$src" --strip-components=1 || die "cannot unpack $node_src"
  fi
  want="$(node_version "$src")"
  [[ "$want" == v$NODE_MAJOR.* ]] || die "$node_src is not Node $NODE_MAJOR (${want:-no bin/node})"
  [[ -e "$src/lib/node_modules/npm/bin/npm-cli.js" ]] || die "$node_src has no npm (lib/node_modules/npm)"
  [[ "$have" == "$want" ]] && return 0
  log "installing Node $want into $PREFIX/node"
  mkdir -p "$PREFIX"
  rm -rf "$PREFIX/node.new"
  cp -a "$src" "$PREFIX/node.new"
  rm -rf "$PREFIX/node"
  mv "$PREFIX/node.new" "$PREFIX/node"
}

pack_checkout() {
  local checkout
  checkout="$(cd "$here/.." && pwd)"
  [[ -f "$checkout/package.json" ]] || die "no --package given and $here is not in a netprobe checkout"
  log "packing $checkout"
  (cd "$checkout" && PATH="$PREFIX/node/bin:$PATH" npm pack --silent --pack-destination "$tmp" >/dev/null)
  package="$(ls "$tmp"/netprobe-*.tgz)"
  [[ -n "$lockfile" || ! -f "$checkout/package-lock.json" ]] || lockfile="$checkout/package-lock.json"
}

# Unpacks the release and builds its native modules against this Node's headers. The service runs
# the compiled JavaScript in dist/ (built by `npm pack`'s prepack); the `lab` and `hq` tools run
# from the TypeScript sources, which Node strips only outside node_modules.
install_release() {
  [[ -f "$package" ]] || die "no such package: $package"
  local sum version id dir
  [[ -z "$lockfile" || -f "$lockfile" ]] || die "no such lockfile: $lockfile"
  sum="$(cat "$package" ${lockfile:+"$lockfile"} | sha256sum | cut -c1-12)"
  version="$(tar -xzOf "$package" package/package.json | "$PREFIX/node/bin/node" -p 'JSON.parse(require("fs").readFileSync(0, "utf8")).version')"
  id="$version-$sum"
  dir="$PREFIX/releases/$id"
  if [[ ! -f "$dir/.netprobe-installed" ]]; then
    log "installing netprobe $version into $dir (npm install, native modules)"
    rm -rf "$dir.partial"
    mkdir -p "$dir.partial"
    tar -xzf "$package" -C "$dir.partial" --strip-components=1 --no-same-owner
    [[ -f "$dir.partial/dist/probe/src/cli.js" ]] || die "$package has no dist/ (npm pack builds it: npm run build)"
    [[ -z "$lockfile" ]] || cp "$lockfile" "$dir.partial/package-lock.json"
    (
      cd "$dir.partial"
      export PATH="$PREFIX/node/bin:$PATH" npm_config_nodedir="$PREFIX/node"
      if [[ -f package-lock.json || -f npm-shrinkwrap.json ]]; then
        npm ci --omit=dev --no-audit --no-fund --loglevel=error >&2
      else
        npm install --omit=dev --no-audit --no-fund --no-package-lock --loglevel=error >&2
      fi
      # A native module that did not build must fail the install, not the first check run.
      node -e '
        for (const m of ["raw-socket", "pcap", "better-sqlite3", "epoll"]) {
          try { const x = require(m); if (m === "better-sqlite3") new x(":memory:").close(); }
          catch (e) { console.error(`native module ${m} failed to load: ${e.message}`); process.exit(1); }
        }'
    ) || die "npm install of $package failed"
    chmod -R go-w "$dir.partial"
    touch "$dir.partial/.netprobe-installed"
    rm -rf "$dir"
    mv "$dir.partial" "$dir"
  fi
  ln -sfn "releases/$id" "$PREFIX/current.new"
  mv -T "$PREFIX/current.new" "$PREFIX/current"
  # Keep this release and the one before it (for a manual rollback); drop older ones.
  local keep old
  keep="$(ls -1t "$PREFIX/releases" | grep -v '\.partial$' | head -n 2)"
  for old in "$PREFIX"/releases/*; do
    grep -qxF "$(basename "$old")" <<<"$keep" || rm -rf "$old"
  done
  log "netprobe $version is $PREFIX/current"
}

install_user() {
  if ! getent passwd "$SERVICE_USER" >/dev/null; then
    log "creating system user $SERVICE_USER"
    useradd --system --user-group --home-dir "$STATE_DIR" --no-create-home --shell /usr/sbin/nologin \
      --comment "netprobe service" "$SERVICE_USER"
  fi
  # Raspberry Pi OS gives the gpio group /dev/gpiochip* and /sys/class/gpio (udev rules).
  if getent group gpio >/dev/null; then usermod -a -G gpio "$SERVICE_USER"; fi
}

install_files() {
  local fw="$PREFIX/current/firmware" node_bin="$PREFIX/node/bin/node"
  [[ -f "$fw/netprobe.service" ]] || die "the package has no firmware/ directory"
  cat >"$BIN" <<EOF
#!/bin/sh
# netprobe command (installed by netprobe install.sh): the release's own launcher, which runs the
# compiled service on $node_bin with the service's V8 flags, as the systemd unit does.
exec $PREFIX/current/services/probe/bin/netprobe "\$@"
EOF
  chmod 0755 "$BIN"

  # The service writes its config itself when headquarters applies one (cmd/apply_config:
  # atomic rename in this directory, last-known-good beside it; docs/fleet-config.md), so the
  # directory is the service user's. Secrets stay in /etc/default/netprobe, root's.
  install -d -m 0750 -o "$SERVICE_USER" -g "$SERVICE_USER" "$CONFIG_DIR"
  chown "$SERVICE_USER:$SERVICE_USER" "$CONFIG_DIR"
  if [[ ! -e "$CONFIG_DIR/netprobe.yaml" ]]; then
    log "writing the config template $CONFIG_DIR/netprobe.yaml: set site, probe, broker and checks"
    install -m 0640 -o "$SERVICE_USER" -g "$SERVICE_USER" \
      "$PREFIX/current/services/probe/netprobe.example.yaml" "$CONFIG_DIR/netprobe.yaml"
  fi
  if [[ ! -e /etc/default/netprobe ]]; then
    install -m 0600 /dev/null /etc/default/netprobe
    cat >/etc/default/netprobe <<'EOF'
# Environment for netprobe.service (root-readable only): per-device overrides and secrets, e.g.
# NETPROBE_SITE=branch-042
# NETPROBE_PROBE=pi-01
# NETPROBE_BROKER_URL=mqtts://hq.example.com:8883
# NETPROBE_BROKER_PASSWORD=
EOF
  fi
  install -d -m 0750 -o "$SERVICE_USER" -g "$SERVICE_USER" "$STATE_DIR"

  install -m 0644 "$fw/netprobe.service" "$UNIT"
  install -D -m 0644 "$fw/netprobe-watchdog.conf" "$WATCHDOG_CONF"
  install -D -m 0644 "$fw/60-netprobe-leds.rules" "$UDEV_RULES"
}

boot_dir() {
  local d
  for d in /boot/firmware /boot; do
    [[ -f "$d/config.txt" ]] && { echo "$d"; return 0; }
  done
  return 1
}

install_overlay() {
  local fw="$PREFIX/current/firmware" boot
  if ! boot="$(boot_dir)"; then
    log "no Raspberry Pi boot partition (/boot/firmware/config.txt): LED overlay not installed"
    return 0
  fi
  mkdir -p "$boot/overlays"
  dtc -q -@ -I dts -O dtb -o "$boot/overlays/netprobe-leds.dtbo.new" "$fw/overlays/netprobe-leds.dts"
  mv "$boot/overlays/netprobe-leds.dtbo.new" "$boot/overlays/netprobe-leds.dtbo"
  # Replace our block (or add it) and leave every other line of config.txt as it was.
  awk -v b="$BEGIN_MARK" -v e="$END_MARK" '$0 == b { skip = 1 } !skip { print } $0 == e { skip = 0 }' \
    "$boot/config.txt" >"$tmp/config.txt"
  { printf '%s\n' "$BEGIN_MARK"; cat "$fw/config.txt.fragment"; printf '%s\n' "$END_MARK"; } >>"$tmp/config.txt"
  if ! cmp -s "$tmp/config.txt" "$boot/config.txt"; then
    cat "$tmp/config.txt" >"$boot/config.txt"
    log "$boot/config.txt: LED overlay and hardware watchdog enabled (takes effect after a reboot)"
  fi
}

enable_service() {
  if ((no_start)); then
    # systemctl works offline (chroot, image build): it only creates the enablement symlinks.
    systemctl enable netprobe.service >/dev/null 2>&1 || die "systemctl enable netprobe.service failed"
    log "installed and enabled; not started (--no-start or no running systemd)"
    return 0
  fi
  systemctl daemon-reload
  udevadm control --reload >/dev/null 2>&1 || true
  systemctl enable netprobe.service >/dev/null
  # An upgrade restarts a running service; a first install starts it.
  if systemctl is-active --quiet netprobe.service; then
    systemctl restart netprobe.service
  else
    systemctl start netprobe.service
  fi
  log "netprobe.service is running: journalctl -u netprobe -f"
}

install_apt
install_node
[[ -n "$package" ]] || pack_checkout
install_release
install_user
install_files
install_overlay
enable_service
log "done: edit $CONFIG_DIR/netprobe.yaml, check it with 'netprobe config validate $CONFIG_DIR/netprobe.yaml'"
