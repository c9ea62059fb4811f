#!/bin/sh
# Adds one netprobe user to the broker's password file and ACL (deploy/mosquitto/netprobe.conf).
#
#   netprobe-broker-user.sh probe SITE PROBE   user SITE/PROBE: publishes its own topics only,
#                                              subscribes its own cmd/# only
#   netprobe-broker-user.sh hq NAME            user NAME: reads every probe, publishes commands only
#
# Environment: NETPROBE_ACL_FILE (default /etc/mosquitto/netprobe/acl), NETPROBE_PASSWD_FILE
# (default /etc/mosquitto/netprobe/passwd), NETPROBE_USER_PASSWORD (default: a random one, printed
# once on stdout). Then reload mosquitto (SIGHUP re-reads both files). Refuses an existing user.
set -eu

acl=${NETPROBE_ACL_FILE:-/etc/mosquitto/netprobe/acl}
passwd=${NETPROBE_PASSWD_FILE:-/etc/mosquitto/netprobe/passwd}
id_ok() { printf '%s' "$1" | grep -Eq '^[A-Za-z0-9_.-]{1,64}$'; }
usage() { sed -n '4,6p' "$0" >&2; exit 2; }

[ $# -ge 2 ] || usage
role=$1
case $role in
probe)
  [ $# -eq 3 ] || usage
  id_ok "$2" && id_ok "$3" || { echo "site and probe: 1-64 of A-Z a-z 0-9 _ . -" >&2; exit 2; }
  user="$2/$3"
  base="netprobe/v1/$2/$3"
  block="user $user
topic write $base/state
topic write $base/health
topic write $base/results/#
topic write $base/events
topic write $base/config
topic write $base/reply/#
topic read $base/cmd/#"
  ;;
hq)
  [ $# -eq 2 ] || usage
  id_ok "$2" || { echo "name: 1-64 of A-Z a-z 0-9 _ . -" >&2; exit 2; }
  user=$2
  block="user $user
topic read netprobe/v1/#
topic write netprobe/v1/+/+/cmd/#"
  ;;
*) usage ;;
esac

touch "$acl" "$passwd"
if grep -qx "user $user" "$acl"; then
  echo "user $user is already in $acl" >&2
  exit 1
fi
password=${NETPROBE_USER_PASSWORD:-}
if [ -z "$password" ]; then
  password=$(openssl rand -base64 24 | tr -d '\n')
  echo "$user $password"
fi
mosquitto_passwd -b "$passwd" "$user" "$password"
printf '\n# %s (added %s)\n%s\n' "$role" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$block" >>"$acl"
chmod 0640 "$passwd"
