#!/bin/sh
# Sample etcd host: makes this container's SSH host keys (once), authorizes the worker's key
# and runs sshd in the foreground. etcd itself is started over SSH by the cluster's service
# commands (etcd-service), not here.
set -eu
ssh-keygen -A
mkdir -p /run/sshd /root/.ssh
chmod 700 /root/.ssh
if [ -r /run/secrets/steward_ssh_pub ]; then
  install -m 600 /run/secrets/steward_ssh_pub /root/.ssh/authorized_keys
else
  echo "etcd-host: /run/secrets/steward_ssh_pub is missing: the worker will not be able to log in" >&2
fi
exec /usr/sbin/sshd -D -e
