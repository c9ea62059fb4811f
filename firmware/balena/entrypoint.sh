#!/bin/sh
# The container's entry point (services/probe/Dockerfile.template): it starts as root with only
# CHOWN, SETUID, SETGID, SETPCAP and NET_RAW (docker-compose.yml), and execs the service as the
# `netprobe` user holding CAP_NET_RAW alone — in every capability set, bounding set included —
# with no_new_privs. Docker cannot hand a non-root user an ambient capability itself.
set -eu
# A volume made by an older image (whose service ran as root) belongs to root: hand it over once.
if [ "$(stat -c %u /data)" != "$(id -u netprobe)" ]; then chown -R netprobe:netprobe /data; fi
# The heartbeat's tmpfs (docker-compose.yml) is mounted root-owned.
if [ -d /run/netprobe ]; then chown netprobe:netprobe /run/netprobe; fi
exec setpriv --reuid=netprobe --regid=netprobe --init-groups \
  --inh-caps=-all,+net_raw --ambient-caps=-all,+net_raw --bounding-set=-all,+net_raw \
  --no-new-privs -- "$@"
