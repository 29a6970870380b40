/**
 * `npm run bed -- up|down`: the test bed by hand, for exploring (`up` leaves it running and
 * prints a cluster spec and worker environment for it; `down` stops exactly what a bed and its
 * Temporal server started, also after a killed run).
 */
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { Bed } from '../testbed';
import { readRecorded, stopProcesses } from '../testbed/procs';
import { startTemporal } from '../testbed/temporal';

const TEMPORAL_DIR = join(tmpdir(), 'etcd-steward-temporal');
const program = new Command('bed').description('the local test bed: loopback hosts with sshd and a TLS etcd cluster');

program
  .command('up')
  .description('bring up hosts, the etcd cluster and a Temporal dev server, and leave them running')
  .option('--hosts <n>', 'number of hosts', (v) => Number(v), 5)
  .option('--members <n>', 'members of the initial cluster', (v) => Number(v), 3)
  .option('--non-root', 'hosts that refuse root logins, reached as etcd-steward with sudo through a bastion (needs root: makes users, a sudoers file, a firewall rule)', false)
  .action(async (o: { hosts: number; members: number; nonRoot: boolean }) => {
    const bed = await Bed.up({ hosts: o.hosts, members: o.members, ...(o.nonRoot ? { access: 'sudo' as const, bastion: true } : {}), log: (l) => console.log(l) });
    const temporal = await startTemporal({ dir: TEMPORAL_DIR });
    console.log(`\nTemporal ${temporal.address}, Web UI ${temporal.uiUrl}`);
    console.log(`\nworker environment:\n  TEMPORAL_ADDRESS=${temporal.address} STEWARD_SSH_KEY=${bed.secretFiles.sshKey} STEWARD_ETCD_CA=${bed.secretFiles.etcdCa} STEWARD_ETCD_CERT=${bed.secretFiles.etcdCert} STEWARD_ETCD_KEY=${bed.secretFiles.etcdKey}`);
    console.log(`\ncluster spec:\n${JSON.stringify(bed.spec, null, 2)}`);
    console.log(`\nspare hosts: ${bed.hosts.slice(o.members).map((h) => `${h.name} ${h.address} (host key ${h.hostKey})`).join('; ') || 'none'}`);
    console.log('\nstop with: npm run bed -- down');
  });

program
  .command('down')
  .description('stop everything the bed and its Temporal server started, and remove their files')
  .action(async () => {
    await Bed.cleanStale(join(tmpdir(), 'etcd-steward-bed'));
    await stopProcesses(readRecorded(TEMPORAL_DIR));
    console.log('bed down');
  });

program.parseAsync().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : String(err));
  process.exit(1);
});
