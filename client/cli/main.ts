/**
 * The operator CLI: `etcd-steward <command>` (`npx etcd-steward` in a clone, `npm run steward --`),
 * a thin layer over the typed client. One file per command in commands/; what they share in
 * shared.ts (connection, watching, exit statuses) and format.ts (what people read).
 *
 *   health --spec prod-etcd.yaml
 *   plan scale-out --inventory inventory/prod/inventory.ini      (a dry run: what it would do)
 *   scale-out --spec prod-etcd.yaml --add new-members.yaml --approval each-batch
 *   restart --spec prod-etcd.yaml --reason "quota 8 GiB" --set ETCD_QUOTA_BACKEND_BYTES=8589934592
 *   restart --spec prod-etcd.yaml --reason "etcd 3.6" --binary /opt/etcd-v3.6.16/etcd   (a rolling upgrade)
 *   scale-in --spec prod-etcd.yaml --remove etcd4,etcd5
 *   replace --spec prod-etcd.yaml --member etcd2 --with new-etcd2.yaml
 *   status|watch|approve|pause|resume --cluster prod-etcd
 *   abort --cluster prod-etcd --reason "..."
 *   quorum --cluster prod-etcd --unhealthy --reason "..." --source alertmanager
 *   list
 *
 * Exit status: 0 done (or healthy, or completed); 1 failed, unhealthy, or an error; 2 bad input
 * (options or files); 3 the cluster already has an operation running; 4 the operation was aborted;
 * 5 the operation refused the action (e.g. approve with no batch waiting).
 */
import { buildProgram } from './program';
import { report } from './shared';

buildProgram()
  .parseAsync()
  .catch((e: unknown) => process.exit(report(e)));
