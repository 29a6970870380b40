/**
 * Watches every member's liveness from outside the workflow, for the rolling-restart tests, the
 * demo and the bench: each member is asked for its Status on its own client URL every ~100 ms
 * (no retry on another endpoint), and its etcd pid is read from the bed's pidfile. A member is
 * "down" in a sample when it does not answer. The figures come from what was observed, never
 * from the workflow's own report.
 */
import { etcdClient, type EtcdCredentials } from '../activities/etcd';
import { sleep } from './procs';

export interface LivenessSample {
  /** ms since epoch when the answer (or the failure) came. */
  at: number;
  member: string;
  up: boolean;
  /** The leader's id as this member reported it (up samples only). */
  leaderId?: string;
  /** This member's own id (up samples only). */
  id?: string;
  pid: number | null;
}

export interface LivenessTarget {
  name: string;
  clientURL: string;
}

export class LivenessSampler {
  readonly samples: LivenessSample[] = [];
  private stopped = false;
  private readonly loops: Promise<void>[];

  /**
   * Samples until stop(), or for `maxDurationMs` at most (default 15 minutes): a sampler a failed
   * test forgot to stop ends by itself and never holds its process open.
   */
  constructor(targets: LivenessTarget[], creds: EtcdCredentials, pidOf: (name: string) => number | null, everyMs = 100, maxDurationMs = 15 * 60_000) {
    const until = Date.now() + maxDurationMs;
    const pid = (name: string): number | null => {
      try {
        return pidOf(name);
      } catch {
        return null; // a sample without a pid, never a dead sampler
      }
    };
    this.loops = targets.map(async (t) => {
      const c = etcdClient([t.clientURL], creds, { retry: false, timeoutMs: 500 });
      try {
        while (!this.stopped && Date.now() < until) {
          const t0 = Date.now();
          try {
            const s = await c.maintenance.status();
            this.samples.push({ at: Date.now(), member: t.name, up: true, leaderId: String(s.leader), id: String(s.header.member_id), pid: pid(t.name) });
          } catch {
            this.samples.push({ at: Date.now(), member: t.name, up: false, pid: pid(t.name) });
          }
          await sleep(Math.max(0, everyMs - (Date.now() - t0)));
        }
      } finally {
        c.close();
      }
    });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.loops);
  }

  /** Samples per member: a check on liveness counts only when each member was sampled. */
  counts(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const s of this.samples) out[s.member] = (out[s.member] ?? 0) + 1;
    return out;
  }

  /** Walks the samples in time order, keeping each member's latest state; the most members down at once. */
  maxDownAtOnce(): { count: number; at: number | null; members: string[] } {
    const latest = new Map<string, boolean>();
    let best: { count: number; at: number | null; members: string[] } = { count: 0, at: null, members: [] };
    for (const s of [...this.samples].sort((a, b) => a.at - b.at)) {
      latest.set(s.member, s.up);
      const down = [...latest].filter(([, up]) => !up).map(([m]) => m);
      if (down.length > best.count) best = { count: down.length, at: s.at, members: down };
    }
    return best;
  }

  /** Members seen down at least once, in the order they first went down. */
  wentDown(): string[] {
    const out: string[] = [];
    for (const s of [...this.samples].sort((a, b) => a.at - b.at)) if (!s.up && !out.includes(s.member)) out.push(s.member);
    return out;
  }

  /** When `member` was first seen down (after `after`), or null. */
  firstDown(member: string, after = 0): number | null {
    const s = this.samples.filter((x) => x.member === member && !x.up && x.at >= after).sort((a, b) => a.at - b.at)[0];
    return s ? s.at : null;
  }

  /** The leader id the latest up sample before `t` reported (any member). */
  leaderBefore(t: number): string | null {
    const s = this.samples.filter((x) => x.up && x.at < t && x.leaderId && x.leaderId !== '0').sort((a, b) => b.at - a.at)[0];
    return s?.leaderId ?? null;
  }

  /** Distinct non-null pids seen for a member, in order. */
  pids(member: string): number[] {
    const out: number[] = [];
    for (const s of this.samples.filter((x) => x.member === member).sort((a, b) => a.at - b.at)) if (s.pid !== null && out.at(-1) !== s.pid) out.push(s.pid);
    return out;
  }

  /**
   * Each stretch a member was seen down: from its first failed sample to its next answered one
   * (stop → ready, to within one sampling interval). `to` is null for a member still down at the
   * last sample.
   */
  downStretches(member: string): { from: number; to: number | null }[] {
    const out: { from: number; to: number | null }[] = [];
    let start: number | null = null;
    for (const s of this.samples.filter((x) => x.member === member).sort((a, b) => a.at - b.at)) {
      if (!s.up && start === null) start = s.at;
      if (s.up && start !== null) {
        out.push({ from: start, to: s.at });
        start = null;
      }
    }
    if (start !== null) out.push({ from: start, to: null });
    return out;
  }

  /** The longest time a member was seen down in one stretch, ms. */
  longestDown(member: string): number {
    let start: number | null = null;
    let longest = 0;
    for (const s of this.samples.filter((x) => x.member === member).sort((a, b) => a.at - b.at)) {
      if (!s.up && start === null) start = s.at;
      if (s.up && start !== null) {
        longest = Math.max(longest, s.at - start);
        start = null;
      }
    }
    return longest;
  }
}
