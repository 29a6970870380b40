#!/usr/bin/env bash
# One-time (and idempotent) set-up shared by `npm run demo` and `npm test`:
#   1. system packages: etcd-server etcd-client openssh-server openssl ansible-core chromium sudo
#      iptables nginx libnginx-mod-stream (apt, when missing; ansible-core's ansible-inventory reads
#      Kubespray inventories, as Kubespray users have it; chromium is the browser the Web UI tests
#      drive; sudo and iptables make the root-less bed: a worker user with sudo, and a bastion that
#      is the only way to the hosts; nginx's stream module is the mTLS proxy in front of Temporal)
#   2. npm dependencies (npm ci, when node_modules is missing or older than package-lock.json)
#   3. the Temporal CLI (dev server + Web UI): $TEMPORAL_CLI, `temporal` on PATH,
#      $(go env GOPATH)/bin/temporal, else built once with `go install`, else the SDK's download.
set -euo pipefail
cd "$(dirname "$0")/.."
t0=$(date +%s)

need=()
command -v etcd >/dev/null 2>&1 || need+=(etcd-server)
command -v etcdctl >/dev/null 2>&1 || need+=(etcd-client)
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
command -v ssh-keygen >/dev/null 2>&1 || need+=(openssh-client)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v ansible-inventory >/dev/null 2>&1 || need+=(ansible-core)
[ -x /usr/bin/chromium ] || need+=(chromium)
[ -x /usr/bin/sudo ] || need+=(sudo)
[ -x /usr/sbin/iptables ] || need+=(iptables)
[ -x /usr/sbin/nginx ] || need+=(nginx)
[ -f /usr/lib/nginx/modules/ngx_stream_module.so ] || need+=(libnginx-mod-stream)
command -v start-stop-daemon >/dev/null 2>&1 || [ -x /usr/sbin/start-stop-daemon ] || need+=(dpkg)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "etcd-steward set-up: these Debian packages are missing: ${need[*]}" >&2
    echo "Install them as root, then run this again:  sudo apt-get install -y ${need[*]}" >&2
    exit 1
  fi
  echo "Installing system packages: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
fi

if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "Installing npm dependencies (npm ci)..."
  npm ci --no-audit --no-fund --loglevel=error
fi

temporal=$(node_modules/.bin/tsx testbed/temporal.ts ensure)
echo "set-up done in $(( $(date +%s) - t0 )) s (Temporal CLI: ${temporal})"
