/**
 * How an operation's preflight reached each host (activities/preflight.ts reports it; the
 * workflows say it in their events and the plan command prints it), before any change.
 *
 * Observed: the user and path of the connection its checks ran on,
 * and, for `become: sudo`, that `sudo -n` ran them as root (they ran through it: see SshPool.exec).
 */
export interface HostAccess {
  member: string;
  user: string;
  /** Jump hosts, outermost first, as `host:port`; empty when direct. */
  via: string[];
  sudo: boolean;
}

/** One line per host: `etcd4: user etcd-steward via bastion 127.10.0.254:2222, sudo -n works`. */
export function accessLine(a: HostAccess): string {
  return `${a.member}: user ${a.user}${a.via.length ? a.via.map((v) => ` via bastion ${v}`).join('') : ', direct'}${a.sudo ? ', sudo -n works' : ''}`;
}
