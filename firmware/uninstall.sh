#!/usr/bin/env bash
# Removes what install.sh installed, as root. Keeps the database (/var/lib/netprobe), the config
# (/etc/netprobe, /etc/default/netprobe) and the netprobe user unless --purge is given. Debian
# packages (libpcap, the compiler, …) stay: other software may use them.
#
# Usage: uninstall.sh [--purge]
set -euo pipefail

PREFIX=/opt/netprobe
SERVICE_USER=netprobe
BEGIN_MARK="# BEGIN netprobe (managed by netprobe install.sh)"
END_MARK="# END netprobe"

log() { printf '[netprobe uninstall] %s\n' "$*" >&2; }

purge=0
case "${1:-}" in
  "") ;;
  --purge) purge=1 ;;
  -h | --help)
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
    exit 0
    ;;
  *) log "unknown argument $1 (see --help)"; exit 1 ;;
esac
[[ $(id -u) == 0 ]] || { log "run as root"; exit 1; }

if [[ -d /run/systemd/system ]]; then
  systemctl disable --now netprobe.service >/dev/null 2>&1 || true
else
  systemctl disable netprobe.service >/dev/null 2>&1 || true
fi
rm -f /etc/systemd/system/netprobe.service /etc/systemd/system.conf.d/netprobe-watchdog.conf \
  /etc/udev/rules.d/60-netprobe-leds.rules /usr/local/bin/netprobe
rmdir /etc/systemd/system.conf.d 2>/dev/null || true
[[ -d /run/systemd/system ]] && systemctl daemon-reload
rm -rf "$PREFIX"

for boot in /boot/firmware /boot; do
  [[ -f "$boot/config.txt" ]] || continue
  rm -f "$boot/overlays/netprobe-leds.dtbo"
  if grep -qxF "$BEGIN_MARK" "$boot/config.txt"; then
    tmp="$(mktemp)"
    awk -v b="$BEGIN_MARK" -v e="$END_MARK" '$0 == b { skip = 1 } !skip { print } $0 == e { skip = 0 }' \
      "$boot/config.txt" >"$tmp"
    cat "$tmp" >"$boot/config.txt"
    rm -f "$tmp"
    log "$boot/config.txt: netprobe block removed (takes effect after a reboot)"
  fi
done

if ((purge)); then
  rm -rf /var/lib/netprobe /etc/netprobe /etc/default/netprobe
  if getent passwd "$SERVICE_USER" >/dev/null; then userdel "$SERVICE_USER" >/dev/null 2>&1 || true; fi
  if getent group "$SERVICE_USER" >/dev/null; then groupdel "$SERVICE_USER" >/dev/null 2>&1 || true; fi
  log "removed, including the database, the config and the $SERVICE_USER user"
else
  log "removed; kept the database (/var/lib/netprobe), the config (/etc/netprobe) and the user: uninstall.sh --purge removes them"
fi
