/**
 * The member-level step lists the operations share, on the kernel: a new member joins as a
 * learner and is promoted (scaleOut, replaceMember), a voting member leaves (scaleIn,
 * replaceMember). Each registers its undo on the kernel's compensation stack before the change
 * and commits it when the change is kept, so every operation that uses them rolls back alike.
 *
 * `voters` is the operation's membership as it stands: join adds to it on promotion, leave takes
 * from it on removal; every env file the steps write lists exactly it.
 */
import type { RetiredHost, RetirePolicy } from '../spec/operations';
import type { ClusterSpec, Member } from '../spec/cluster';
import { type OperationKernel, causeOf } from './kernel';
import type { ActivityProfiles } from './profiles';

/** The client URLs of `members`, to reach the cluster through them. */
export const endpoints = (members: Member[]) => members.flatMap((m) => m.clientURLs);

/** A name for a moved-aside data dir, from the workflow's clock (the same on every retry and replay). */
export const retireStamp = (ms: number) => new Date(ms).toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');

export class MemberSteps {
  /** New members rolled back (learner removed, host cleaned, env files restored). */
  readonly rolledBack: string[] = [];
  /** What became of each removed member's host. */
  readonly retired: RetiredHost[] = [];

  constructor(
    private readonly k: OperationKernel,
    private readonly act: ActivityProfiles,
    private readonly spec: ClusterSpec,
    /** The voting members now, in order. */
    public voters: Member[],
  ) {}

  /** The spec as the membership stands now. */
  currentSpec(): ClusterSpec {
    return { ...this.spec, members: [...this.voters] };
  }

  get names(): string[] {
    return this.voters.map((v) => v.name);
  }

  /** The undo of a join: learner removed, service stopped, data dir emptied, env files restored. */
  private async rollBack(m: Member): Promise<void> {
    const { k, act } = this;
    k.event(`rolling back ${m.name}: removing the learner, stopping its service, emptying its data dir`);
    const r = await act.undo.removeLearner({ endpoints: endpoints(this.voters), member: m });
    let hostNote = '';
    try {
      await act.bestEffort.retireHost({ spec: this.currentSpec(), member: m });
    } catch (e) {
      hostNote = `; its host could not be cleaned (${causeOf(e)}): stop etcd there and empty ${m.name}'s data dir before adding it again`;
      k.status.warnings.push(`${m.name}: host not cleaned after rollback: ${causeOf(e)}`);
    }
    await act.undo.syncConfig({ spec: this.currentSpec(), members: this.voters });
    k.setMember(m.name, 'rolled-back');
    this.rolledBack.push(m.name);
    k.event(`${m.name} rolled back${r.removed ? ` (learner ${r.id} removed)` : ' (it was not in the member list)'}; env files list ${this.names.join(', ')} again${hostNote}`);
  }

  /**
   * join as learner → config-sync → start → catch up → promote; its certificate must be in place.
   * From the join to the promotion its undo (rollBack) is on the stack; the last safe point is
   * after the catch-up. Returns the learner's catch-up time.
   */
  async join(m: Member, policy: { catchUpTimeout: number; maxCatchUpLag: number }): Promise<{ catchUpMs: number }> {
    const { k, act } = this;
    const names = this.names;
    k.phase('join');
    // From here on an abort or failure rolls the member back (a no-op if the add never happened).
    k.onUndo(m.name, {
      what: `${m.name}: remove the learner, stop its service, empty its data dir, restore the env files of ${names.join(', ')}`,
      manual: `remove the learner with peer URL ${m.peerURLs.join(',')} if it is still listed (etcdctl member list; etcdctl member remove <id>), stop etcd on ${m.name} and empty its data dir, and set ETCD_INITIAL_CLUSTER on ${names.join(', ')} to list only them`,
      run: () => this.rollBack(m),
    });
    const ref = { endpoints: endpoints(this.voters), member: m };
    const joined = await act.step.addLearner(ref);
    k.setMember(m.name, 'learner');
    k.event(`${m.name}: ${joined.existed ? 'already in the member list' : 'added'} as learner ${joined.id}`);
    k.checkAbort();

    k.phase('config-sync');
    const sync = await act.step.syncConfig({ spec: this.currentSpec(), members: [...this.voters, m], joining: m.name });
    k.event(`config-sync: ETCD_INITIAL_CLUSTER now lists ${[...this.voters, m].map((x) => x.name).join(', ')} (${sync.changed.length ? `rewrote ${sync.changed.join(', ')}` : 'already so'}; nothing restarted)`);
    k.checkAbort();

    k.phase('start');
    k.setMember(m.name, 'starting');
    await act.stepFewTries.startMember({ spec: this.currentSpec(), member: m });
    k.event(`${m.name}: service started`);

    k.phase('catch-up');
    k.setMember(m.name, 'catching-up');
    const { awaitCatchUp } = act.longWait(policy.catchUpTimeout);
    const caught = await k.interruptible(() => awaitCatchUp({ ...ref, maxLag: policy.maxCatchUpLag }));
    k.event(`${m.name}: caught up in ${caught.tookMs} ms (applied ${caught.learnerApplied} vs leader ${caught.leaderApplied})`);
    k.checkAbort(); // the last safe point: after this the member is promoted and kept

    k.phase('promote');
    k.setMember(m.name, 'promoting');
    const promoted = await act.step.promoteLearner(ref);
    k.commit(m.name);
    this.voters.push(m);
    k.setMember(m.name, 'added');
    k.event(`${m.name}: promoted to voting member${promoted.alreadyVoter ? ' (it already was)' : ''}; ${this.voters.length} voting members`);
    k.metrics.learnerCatchUpSeconds.record(caught.tookMs / 1000);
    return { catchUpMs: caught.tookMs };
  }

  /**
   * (MoveLeader to `moveLeaderTo` when it leads) → MemberRemove through the members that stay →
   * its host retired, best effort (unless `retireHost` is false: a rebuilt host under the same
   * address is the new member's, not the old one's) → config-sync of the members that stay.
   * The last safe point is before the MemberRemove: a removal is not undone. From the removal
   * to the config-sync the undo is the config-sync itself (env files made true).
   */
  async leave(m: Member, o: { moveLeaderTo?: Member; retire: RetirePolicy; retireHost: boolean }): Promise<{ leaderMove?: { from: string; to: string } }> {
    const { k, act } = this;
    const staying = this.voters.filter((v) => v.name !== m.name);
    let leaderMove: { from: string; to: string } | undefined;
    if (o.moveLeaderTo) {
      k.phase('move-leader');
      const moved = await act.step.moveLeader({ endpoints: endpoints(staying), to: o.moveLeaderTo });
      if (moved.moved) leaderMove = { from: moved.from, to: moved.to };
      k.event(moved.moved ? `leadership moved from ${moved.from} to ${moved.to}` : `${moved.to} already leads`);
    }
    k.checkAbort(); // the last safe point of this removal

    k.phase('remove');
    k.setMember(m.name, 'removing');
    const names = staying.map((v) => v.name);
    const sync = async (profile: 'step' | 'undo') => (await act[profile].syncConfig({ spec: { ...this.spec, members: staying }, members: staying })).changed;
    k.onUndo(`leave:${m.name}`, {
      what: `make the env files of ${names.join(', ')} list only them (${m.name} was removed)`,
      manual: `set ETCD_INITIAL_CLUSTER on ${names.join(', ')} to list only ${names.join(', ')}`,
      run: async () => {
        const changed = await sync('undo');
        k.event(`config-sync: ETCD_INITIAL_CLUSTER lists ${names.join(', ')}${changed.length ? ` (rewrote ${changed.join(', ')})` : ''}`);
      },
    });
    const r = await act.step.removeMember({ endpoints: endpoints(staying), member: m });
    this.voters = staying;
    k.setMember(m.name, 'removed');
    k.event(`${m.name}: ${r.removed ? `removed from the cluster (member ${r.id})` : 'already gone from the member list'}; ${this.voters.length} voting members`);

    if (o.retireHost) {
      k.phase('retire');
      try {
        const t = await act.hostCleanup.retireMember({ spec: this.spec, member: m, retire: o.retire, stamp: retireStamp(Date.now()) });
        this.retired.push({ member: m.name, cleaned: true, note: `service stopped; ${t.dataDir}${t.envFile ? `; env file moved to ${t.envFile}` : ''}` });
        k.event(`${m.name}: host retired: service stopped; ${t.dataDir}`);
      } catch (e) {
        const note = `its host could not be cleaned (${causeOf(e)}): stop etcd there and ${o.retire === 'wipe' ? 'wipe' : 'move aside'} its data dir before the host serves again`;
        this.retired.push({ member: m.name, cleaned: false, note });
        k.warn(`${m.name}: ${note}`);
      }
    }

    k.phase('config-sync');
    const changed = await sync('step');
    k.commit(`leave:${m.name}`);
    k.event(`config-sync: ETCD_INITIAL_CLUSTER now lists ${names.join(', ')} (${changed.length ? `rewrote ${changed.join(', ')}` : 'already so'}; nothing restarted)`);
    return leaderMove ? { leaderMove } : {};
  }
}
