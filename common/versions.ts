/**
 * etcd versions as the members report them (Status' `version`, the server's). Pure. What the
 * operations decide by version (the replacement order, common/replacePlan.ts) is decided by the
 * lowest version an answering member reports: during a rolling upgrade the oldest member bounds
 * what the cluster can do.
 */
import type { ClusterObservation } from './observation';

const key = (v: string) => (/^(\d+)\.(\d+)\.(\d+)/.exec(v) ?? []).slice(1).map(Number);

/** Orders "3.4.23" < "3.5.35" < "3.10.0"; what is not a version sorts first. */
export function compareVersions(a: string, b: string): number {
  const [x, y] = [key(a), key(b)];
  for (let i = 0; i < 3; i++) if ((x[i] ?? -1) !== (y[i] ?? -1)) return (x[i] ?? -1) - (y[i] ?? -1);
  return 0;
}

/** The versions the answering members report, each with its members, lowest first. */
export function versionsInUse(o: ClusterObservation): { version: string; members: string[] }[] {
  const by = new Map<string, string[]>();
  for (const s of o.statuses) if (s.ok && s.version) by.set(s.version, [...(by.get(s.version) ?? []), s.name || s.id]);
  return [...by].map(([version, members]) => ({ version, members })).sort((a, b) => compareVersions(a.version, b.version));
}

/** The lowest version an answering member reports ("unknown" when none does). */
export function lowestVersion(o: ClusterObservation): string {
  return versionsInUse(o)[0]?.version ?? 'unknown';
}

/** A warning when the members run more than one version (an upgrade under way), else null. */
export function mixedVersionsWarning(o: ClusterObservation): string | null {
  const v = versionsInUse(o);
  if (v.length < 2) return null;
  return `the members run mixed etcd versions: ${v.map((x) => `${x.version} (${x.members.join(', ')})`).join(', ')}; decisions that depend on the version follow the oldest, ${v[0]!.version}`;
}
