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

/** "3.5" of "3.5.35"; null when `v` is not a version. */
export function minorOf(v: string): string | null {
  const m = /^(\d+)\.(\d+)\.\d+/.exec(v);
  return m ? `${m[1]}.${m[2]}` : null;
}

/** The oldest etcd the operations are built for: learners, MoveLeader and the v3 member API as 3.4 has them. */
export const OLDEST_SUPPORTED = '3.4.0';

/**
 * A refusal when an answering member runs an etcd older than the operations can drive (no
 * learners before 3.4), else null. The oldest member bounds what the cluster can do.
 */
export function oldestVersionProblem(o: ClusterObservation): string | null {
  const old = versionsInUse(o).filter((v) => compareVersions(v.version, OLDEST_SUPPORTED) < 0);
  if (old.length === 0) return null;
  return `${old.map((v) => `${v.members.join(', ')} run(s) etcd ${v.version}`).join('; ')}: etcd-steward drives etcd ${OLDEST_SUPPORTED} or later (it adds members as learners, which etcd has had since 3.4); upgrade those members first`;
}

/**
 * The patch release every member of the previous minor must run before a rolling upgrade to
 * the minor named, as etcd's upgrade guide for it requires (the guide raises it as fixes land:
 * 3.5.20, 3.5.24, 3.5.26, now 3.5.32 for 3.6).
 */
export const UPGRADE_MINIMUM: Readonly<Record<string, { from: string; guide: string; why: string }>> = {
  '3.6': {
    from: '3.5.32',
    guide: 'https://etcd.io/docs/v3.6/upgrades/upgrade_3_6/',
    why: '3.5.24-3.5.26 fix upgrade blockers (the "too many learner members" failure, etcd issues 19557 and 20793); 3.5.32 adds the v2-store checks the guide relies on',
  },
  '3.7': {
    from: '3.6.11',
    guide: 'https://etcd.io/docs/v3.7/upgrades/upgrade_3_7/',
    why: 'earlier 3.6 patch releases may not be compatible with a rolling upgrade to 3.7',
  },
};

/** A member's current version and the version of the binary it is to run after its restart. */
export interface BinaryTarget {
  member: string;
  /** As the running member reports it; "unknown" when it does not answer. */
  running: string;
  /** As `<binary> --version` printed it on the member's host. */
  target: string;
}

/**
 * Decides whether a rolling restart onto new binaries is an upgrade etcd supports, from the
 * cluster version (the lowest minor every member agrees on), the versions every member runs now
 * and the binaries' versions. Pure. Refused (problems): a binary whose version cannot be read;
 * binaries of different minors; a downgrade of the cluster's minor (etcd's downgrade API does
 * that, not a restart); a skip of a minor (3.4 → 3.6); a minor upgrade while a member of the
 * current minor is older than the patch release the guide requires. Warned: members left on the
 * old minor (the cluster stays there until every member runs the new one), a patch downgrade.
 */
export function checkBinaryChange(a: { clusterVersion: string; running: { member: string; version: string }[]; targets: BinaryTarget[] }): { problems: string[]; warnings: string[]; targetVersion: string | null } {
  const problems: string[] = [];
  const warnings: string[] = [];
  for (const t of a.targets) if (minorOf(t.target) === null) problems.push(`${t.member}: the new binary reports version "${t.target}", not an etcd version`);
  const targets = a.targets.filter((t) => minorOf(t.target) !== null);
  const minors = [...new Set(targets.map((t) => minorOf(t.target)!))];
  if (minors.length > 1) {
    problems.push(`the new binaries are of different minor versions (${targets.map((t) => `${t.member}: ${t.target}`).join(', ')}): a rolling upgrade moves every member to one version`);
    return { problems, warnings, targetVersion: null };
  }
  if (targets.length === 0) return { problems, warnings, targetVersion: null };
  const patches = [...new Set(targets.map((t) => t.target))].sort(compareVersions);
  if (patches.length > 1) warnings.push(`the new binaries differ in patch release (${targets.map((t) => `${t.member}: ${t.target}`).join(', ')})`);
  const targetVersion = patches.at(-1)!;
  const to = minorOf(targetVersion)!;
  // The cluster version is what every member agrees on; when no member says, the oldest running member's minor.
  const oldest = a.running.map((r) => r.version).filter((v) => minorOf(v) !== null).sort(compareVersions)[0];
  const from = minorOf(a.clusterVersion) ?? (oldest ? minorOf(oldest) : null);
  if (from === null) {
    problems.push('no member reports its version: the upgrade path cannot be checked (are the members up?)');
    return { problems, warnings, targetVersion };
  }
  const [fMaj, fMin] = from.split('.').map(Number) as [number, number];
  const [tMaj, tMin] = to.split('.').map(Number) as [number, number];
  if (tMaj !== fMaj || tMin < fMin) {
    problems.push(`the cluster runs etcd ${from} and the new binaries are ${targetVersion}: that is a downgrade, which etcd does only through its downgrade API (etcdctl downgrade validate/enable ${to}), not by a rolling restart`);
  } else if (tMin > fMin + 1) {
    problems.push(`the cluster runs etcd ${from} and the new binaries are ${targetVersion}: that skips ${fMaj}.${fMin + 1}; etcd upgrades one minor version at a time, so first upgrade every member to the latest ${fMaj}.${fMin + 1} patch release`);
  } else if (tMin === fMin + 1) {
    const need = UPGRADE_MINIMUM[to];
    const behind = need ? a.running.filter((r) => minorOf(r.version) === from && compareVersions(r.version, need.from) < 0) : [];
    if (need && behind.length) {
      problems.push(
        `${behind.map((r) => `${r.member} runs ${r.version}`).join(', ')}: etcd's ${to} upgrade guide (${need.guide}) requires every ${from} member at ${need.from} or later first (${need.why}); restart them onto ${need.from} or later, then upgrade`,
      );
    }
    const staying = a.running.filter((r) => !targets.some((t) => t.member === r.member) && minorOf(r.version) === from);
    if (staying.length) warnings.push(`${staying.map((r) => r.member).join(', ')} keep(s) running ${from}: the cluster stays at version ${from} (no ${to} features) until every member runs ${to}`);
  }
  for (const t of targets) if (minorOf(t.running) === to && compareVersions(t.target, t.running) < 0) warnings.push(`${t.member}: ${t.running} → ${t.target} is a patch downgrade`);
  return { problems, warnings, targetVersion };
}
