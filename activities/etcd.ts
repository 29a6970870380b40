/**
 * Talking to etcd through its API (etcd3 over gRPC with TLS and a client certificate).
 *
 * `observeCluster` is the one reading every decision rests on: the member list as the cluster
 * reports it, plus each member's own status (leader, raft indexes) asked of that member alone,
 * without the client's retry-on-another-endpoint, so an unreachable member shows as such.
 */
import { noop } from 'cockatiel';
import { request } from 'node:https';
import { Etcd3 } from 'etcd3';
import type { ClusterObservation, ListedMember, MemberStatus } from '../common/observation';

export type { ClusterObservation, ListedMember, MemberStatus } from '../common/observation';

/** The worker's etcd client credentials (worker configuration, never part of a payload). */
export interface EtcdCredentials {
  caCert: Buffer;
  cert: Buffer;
  key: Buffer;
}

export function etcdClient(endpoints: string[], creds: EtcdCredentials, opts: { retry?: boolean; timeoutMs?: number } = {}): Etcd3 {
  const timeoutMs = opts.timeoutMs ?? 5_000;
  return new Etcd3({
    hosts: endpoints,
    credentials: { rootCertificate: creds.caCert, certChain: creds.cert, privateKey: creds.key },
    dialTimeout: timeoutMs,
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + timeoutMs }),
    ...(opts.retry === false ? { faultHandling: { global: noop, host: () => noop } } : {}),
  });
}

function errText(e: unknown): string {
  return e instanceof Error ? e.message.split('\n')[0]! : String(e);
}

export async function listMembers(client: Etcd3): Promise<ListedMember[]> {
  const res = await client.cluster.memberList({ linearizable: true });
  return (res.members ?? []).map((m) => ({
    id: String(m.ID),
    name: m.name ?? '',
    peerURLs: m.peerURLs ?? [],
    clientURLs: m.clientURLs ?? [],
    isLearner: Boolean(m.isLearner),
  }));
}

export interface ObserveOptions {
  /** Endpoints to ask for the member list (any member will do). */
  endpoints: string[];
  /** Client URLs to use for a member whose list entry has none yet (name -> URLs). */
  knownClientURLs?: Record<string, string[]>;
  /** Largest allowed spread of raft applied indexes among voters before they count as not converged. */
  maxIndexSpread?: number;
  timeoutMs?: number;
  /** Also ask each answering member for its cluster version (GET /version): one more round trip each, so only health reports ask. */
  withVersions?: boolean;
}

/** A member's `GET /version` (over TLS with the client certificate): its server and cluster versions. */
export function readVersions(creds: EtcdCredentials, clientURL: string, timeoutMs = 3_000): Promise<{ server: string; cluster: string }> {
  return new Promise((resolve, reject) => {
    const req = request(new URL('/version', clientURL), { ca: creds.caCert, cert: creds.cert, key: creds.key, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => {
        try {
          const v = JSON.parse(body) as { etcdserver?: string; etcdcluster?: string };
          resolve({ server: v.etcdserver ?? 'unknown', cluster: v.etcdcluster ?? 'unknown' });
        } catch {
          reject(new Error(`${clientURL}/version answered ${res.statusCode}: ${body.slice(0, 80)}`));
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error(`${clientURL}/version did not answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

/** Reads the member list and every member's status, and says what (if anything) is unhealthy. */
export async function observeCluster(creds: EtcdCredentials, opts: ObserveOptions): Promise<ClusterObservation> {
  const maxSpread = opts.maxIndexSpread ?? 1000;
  const listClient = etcdClient(opts.endpoints, creds, { timeoutMs: opts.timeoutMs });
  let members: ListedMember[];
  try {
    members = await listMembers(listClient);
  } catch (e) {
    return { members: [], statuses: [], leaderId: null, voters: 0, learners: 0, problems: [`member list unavailable from ${opts.endpoints.join(', ')}: ${errText(e)}`], healthy: false };
  } finally {
    listClient.close();
  }

  const statuses = await Promise.all(
    members.map(async (m): Promise<MemberStatus> => {
      const urls = m.clientURLs.length > 0 ? m.clientURLs : (opts.knownClientURLs?.[m.name] ?? []);
      const base = { id: m.id, name: m.name, isLearner: m.isLearner };
      if (urls.length === 0) return { ...base, endpoint: null, ok: false, error: 'has no client URL yet (not started)' };
      const endpoint = urls[0]!;
      const c = etcdClient([endpoint], creds, { retry: false, timeoutMs: opts.timeoutMs ?? 3_000 });
      try {
        const s = await c.maintenance.status();
        return {
          ...base,
          endpoint,
          ok: true,
          leaderId: String(s.leader),
          raftTerm: String(s.raftTerm),
          raftIndex: String(s.raftIndex),
          raftAppliedIndex: String((s as { raftAppliedIndex?: string }).raftAppliedIndex ?? s.raftIndex),
          dbSizeBytes: Number(s.dbSize),
          version: s.version,
          ...(opts.withVersions ? { clusterVersion: await readVersions(creds, endpoint, opts.timeoutMs ?? 3_000).then((v) => v.cluster, () => 'unknown') } : {}),
          ...((s as { errors?: string[] }).errors?.length ? { error: (s as { errors: string[] }).errors.join('; ') } : {}),
        };
      } catch (e) {
        return { ...base, endpoint, ok: false, error: errText(e) };
      } finally {
        c.close();
      }
    }),
  );

  const problems: string[] = [];
  const voters = statuses.filter((s) => !s.isLearner);
  const learners = statuses.filter((s) => s.isLearner);
  for (const s of voters) {
    if (!s.ok) problems.push(`voting member ${s.name || s.id} does not answer: ${s.error}`);
    else if (s.error) problems.push(`voting member ${s.name} reports: ${s.error}`);
  }
  const leaders = new Set(voters.filter((s) => s.ok && s.leaderId && s.leaderId !== '0').map((s) => s.leaderId!));
  const noLeader = voters.filter((s) => s.ok && (!s.leaderId || s.leaderId === '0'));
  let leaderId: string | null = null;
  if (leaders.size === 1 && noLeader.length === 0) {
    leaderId = [...leaders][0]!;
    if (!members.some((m) => m.id === leaderId && !m.isLearner)) problems.push(`the reported leader ${leaderId} is not a voting member`);
  } else if (leaders.size === 0) {
    problems.push('no leader');
  } else {
    problems.push(`members disagree on the leader (${[...leaders].join(', ')}${noLeader.length ? ', some see none' : ''})`);
  }
  const applied = voters.filter((s) => s.ok && s.raftAppliedIndex).map((s) => BigInt(s.raftAppliedIndex!));
  if (applied.length > 1) {
    const spread = applied.reduce((a, b) => (b > a ? b : a)) - applied.reduce((a, b) => (b < a ? b : a));
    if (spread > BigInt(maxSpread)) problems.push(`raft applied indexes of the voters differ by ${spread} (more than ${maxSpread}): not converged`);
  }
  return { members, statuses, leaderId, voters: voters.length, learners: learners.length, problems, healthy: problems.length === 0 };
}
