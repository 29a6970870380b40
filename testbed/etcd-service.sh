#!/bin/bash
# Stands in for systemd's etcd unit on the test bed, so the bed's hosts are driven by the same
# kind of service command templates a real host uses with systemctl:
#   etcd-service start|stop|restart|is-active|pid|logs HOST_ROOT
# HOST_ROOT is the host's directory tree (etc/etcd.env, run/etcd.pid, log/etcd.log).
# `pid` prints etcd's pid, or 0 when it does not run (like `systemctl show -p MainPID --value`);
# `logs` prints the last 20 lines of its log (like `journalctl -u etcd -n 20`).
# The etcd binary is ETCD_BINARY, else the host's own HOST_ROOT/usr/local/bin/etcd (where Kubespray
# installs it; the bed links it to the etcd version it runs).
# start, stop and restart hold a lock (run/etcd-service.lock), as systemd serializes the jobs of
# one unit: a restart left running by a worker that died and the retry on another worker never
# start two etcd processes.
#
# TEST FIXTURE (the fault suite): while HOST_ROOT/run/TEST-hold-after-stop exists, a stop that
# stopped a running etcd writes its pid to HOST_ROOT/run/TEST-held and waits (120 s at most) until the file
# is gone, so a test can kill the worker while the member is down.
set -eu
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
usage='usage: etcd-service start|stop|restart|is-active|pid|logs HOST_ROOT'
action=${1:?$usage}
root=${2:?$usage}
env_file=$root/etc/etcd.env
pidfile=$root/run/etcd.pid
log=$root/log/etcd.log
bin=${ETCD_BINARY:-$root/usr/local/bin/etcd}

# Running means: the pidfile names a live process that is not a zombie. (Where pid 1 is slow to
# reap orphans, a dead etcd lingers as a zombie that `start-stop-daemon --status` still counts.)
running() {
  local pid state
  pid=$(cat "$pidfile" 2>/dev/null) || return 1
  [ -n "$pid" ] && [ -r "/proc/$pid/stat" ] || return 1
  state=$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1)
  [ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}

do_start() {
  # like `systemctl start`: starting a running service is a no-op
  if running; then return 0; fi
  [ -r "$env_file" ] || { echo "etcd-service: $env_file is missing" >&2; return 1; }
  mkdir -p "$root/run" "$root/log"
  set -a
  # shellcheck disable=SC1090
  . "$env_file"
  set +a
  # (fd 9, the lock, is not etcd's to keep)
  start-stop-daemon --start --quiet --background --make-pidfile --pidfile "$pidfile" \
    --output "$log" --chdir "$root" --exec "$bin" 9>&-
  # A unit with Restart=no reports a process that dies at once as failed. Return as soon as
  # etcd listens on its (first) client port, the first thing it does once its configuration
  # is read, or fail when it exits first; 60 s at most. (Serving clients comes later, once the
  # data is loaded: readiness is checked through the etcd API, not here.)
  local port deadline
  port=$(client_port)
  deadline=$((SECONDS + 60))
  while :; do
    if ! running; then
      sleep 0.1 # let the log catch up
      echo "etcd-service: etcd exited right after start; last lines of $log:" >&2
      tail -n 2 "$log" >&2
      rm -f "$pidfile"
      return 1
    fi
    if [ -n "$port" ]; then
      listening "$(cat "$pidfile")" "$port" && return 0
    elif [ $SECONDS -ge $((deadline - 58)) ]; then
      return 0 # no TCP client port to watch (e.g. unix://): alive for 2 s is all we can tell
    fi
    if [ $SECONDS -ge $deadline ]; then
      echo "etcd-service: etcd runs but does not listen on client port $port after 60 s; last lines of $log:" >&2
      tail -n 2 "$log" >&2
      return 1
    fi
    sleep 0.05
  done
}

# The port of the first TCP URL in ETCD_LISTEN_CLIENT_URLS (etcd's default: 2379), empty if none.
client_port() {
  local url=${ETCD_LISTEN_CLIENT_URLS:-http://localhost:2379}
  url=${url%%,*}
  case $url in
    http://* | https://*) ;;
    *) return 0 ;;
  esac
  url=${url#*://}
  url=${url%%/*}
  case $url in
    *:[0-9]*) echo "${url##*:}" ;;
  esac
}

# True when process $1 holds a listening TCP socket on port $2 (read from /proc: no connection
# is made, so etcd logs no rejected handshake, and a process of someone else on that port does
# not count).
listening() {
  local pid=$1 hex inodes
  hex=$(printf ':%04X' "$2")
  inodes=$(find "/proc/$pid/fd" -maxdepth 1 -lname 'socket:*' -printf '%l\n' 2>/dev/null | sed -n 's/^socket:\[\([0-9]*\)\]$/\1/p')
  [ -n "$inodes" ] || return 1
  awk -v port="$hex" -v inodes=" $(echo $inodes) " \
    'FNR > 1 && $4 == "0A" && substr($2, length($2) - 4) == port && index(inodes, " " $10 " ") { found = 1 } END { exit !found }' \
    /proc/net/tcp /proc/net/tcp6 2>/dev/null
}

do_stop() {
  # like `systemctl stop`: stopping a stopped service succeeds
  if running; then
    start-stop-daemon --stop --quiet --pidfile "$pidfile" --signal TERM >/dev/null 2>&1 || true
    for _ in $(seq 1 400); do running || break; sleep 0.05; done # 20 s, then KILL
    if running; then kill -KILL "$(cat "$pidfile")" 2>/dev/null || true; sleep 0.2; fi
    rm -f "$pidfile"
    test_hold_after_stop
  fi
  rm -f "$pidfile"
}

test_hold_after_stop() {
  local hold=$root/run/TEST-hold-after-stop
  [ -e "$hold" ] || return 0
  echo $$ >"$root/run/TEST-held"
  for _ in $(seq 1 1200); do [ -e "$hold" ] || return 0; sleep 0.1; done
}

lock() {
  mkdir -p "$root/run"
  exec 9>"$root/run/etcd-service.lock"
  flock -w 180 9 || { echo "etcd-service: another start/stop of this etcd has held its lock for 180 s" >&2; exit 1; }
}

case $action in
  start) lock; do_start ;;
  stop) lock; do_stop ;;
  restart) lock; do_stop; do_start ;;
  is-active) running || exit 3 ;;  # systemctl is-active: 3 when inactive
  pid) if running; then cat "$pidfile"; else echo 0; fi ;;
  logs) if [ -r "$log" ]; then tail -n 20 "$log"; fi ;;
  *) echo "etcd-service: unknown action $action" >&2; exit 2 ;;
esac
