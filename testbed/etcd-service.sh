#!/bin/bash
# Stands in for systemd's etcd unit on the test bed, so the bed's hosts are driven by the same
# kind of service command templates a real host uses with systemctl:
#   etcd-service start|stop|restart|is-active HOST_ROOT
# HOST_ROOT is the host's directory tree (etc/etcd.env, run/etcd.pid, log/etcd.log).
# The etcd binary is ETCD_BINARY, else /usr/bin/etcd (Debian's etcd-server).
set -eu
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
action=${1:?usage: etcd-service start|stop|restart|is-active HOST_ROOT}
root=${2:?usage: etcd-service start|stop|restart|is-active HOST_ROOT}
env_file=$root/etc/etcd.env
pidfile=$root/run/etcd.pid
log=$root/log/etcd.log
bin=${ETCD_BINARY:-/usr/bin/etcd}

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
  start-stop-daemon --start --quiet --background --make-pidfile --pidfile "$pidfile" \
    --output "$log" --chdir "$root" --exec "$bin"
  # a unit with Restart=no reports a process that dies at once as failed: watch it for 1.5 s
  for _ in 1 2 3 4 5 6; do
    sleep 0.25
    if ! running; then
      echo "etcd-service: etcd exited right after start; last lines of $log:" >&2
      tail -n 2 "$log" >&2
      rm -f "$pidfile"
      return 1
    fi
  done
}

do_stop() {
  # like `systemctl stop`: stopping a stopped service succeeds
  if running; then
    start-stop-daemon --stop --quiet --pidfile "$pidfile" --exec "$bin" --signal TERM >/dev/null 2>&1 || true
    for _ in $(seq 1 100); do running || break; sleep 0.2; done
    if running; then kill -KILL "$(cat "$pidfile")" 2>/dev/null || true; sleep 0.2; fi
  fi
  rm -f "$pidfile"
}

case $action in
  start) do_start ;;
  stop) do_stop ;;
  restart) do_stop; do_start ;;
  is-active) running || exit 3 ;;  # systemctl is-active: 3 when inactive
  *) echo "etcd-service: unknown action $action" >&2; exit 2 ;;
esac
