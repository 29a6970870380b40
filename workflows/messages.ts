/**
 * The messages every operation understands (one kernel, workflows/kernel.ts, handles them for
 * all), shared by the workflows, the typed client and the CLI. The Web UI lists them with the
 * descriptions set where the handlers are registered.
 *
 * Operator actions exist twice: as signals (fire and forget: monitoring automation, the mission's
 * contract) and as Updates with validators (the client, the CLI and the Web UI's "Send an
 * Update"), which answer: an approve with nothing waiting is rejected with the reason, an abort
 * says what will be rolled back, pause/resume return the new state.
 */
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { QuorumVerdict } from '../common/gate';
import type { OperationType } from '../common/ids';

export type { QuorumVerdict } from '../common/gate';

export interface ApproveArgs {
  /** The batch (0-based) being approved; without it, whichever batch is waiting now. */
  batch?: number;
  by?: string;
  comment?: string;
}
export interface AbortArgs {
  reason: string;
  by?: string;
}
export interface PauseArgs {
  reason?: string;
  by?: string;
}
export interface ResumeArgs {
  by?: string;
}

export const approveSignal = defineSignal<[ApproveArgs?]>('approve');
export const abortSignal = defineSignal<[AbortArgs]>('abort');
export const pauseSignal = defineSignal<[PauseArgs?]>('pause');
export const resumeSignal = defineSignal<[ResumeArgs?]>('resume');
export const quorumSignal = defineSignal<[QuorumVerdict]>('quorum');

export const SIGNAL_DESCRIPTIONS = {
  approve: 'Let the operation past the quorum gate of the batch waiting for approval. Input: {"batch"?: number, "by"?: string, "comment"?: string}',
  abort: 'Stop at the next safe point and roll back what is not yet committed (a learner not yet promoted; a member whose restart has not yet come back). Input: {"reason": string, "by"?: string}',
  pause: 'Hold the operation at its next gate until resumed. Input: {"reason"?: string, "by"?: string}',
  resume: 'Release a paused operation. Input: {"by"?: string}',
  quorum: 'A monitoring verdict; while the latest is unhealthy the gate stays closed. Input: {"healthy": boolean, "reason"?: string, "source"?: string}',
} as const;

/** What an accepted `approve` update answers. */
export interface ApproveResult {
  /** The batch approved (0-based) and what it holds. */
  batch: number;
  members: string[];
}
/** What an accepted `abort` update answers. */
export interface AbortResult {
  /** What will be undone at the next safe point (empty: nothing is in flight). */
  willRollBack: string[];
  /** Where the operation is now. */
  phase: Phase;
}
/** What pause/resume updates answer: the new state. */
export interface PauseState {
  paused: boolean;
  phase: Phase;
}

export const approveUpdate = defineUpdate<ApproveResult, [ApproveArgs]>('approve');
export const abortUpdate = defineUpdate<AbortResult, [AbortArgs]>('abort');
export const pauseUpdate = defineUpdate<PauseState, [PauseArgs]>('pause');
export const resumeUpdate = defineUpdate<PauseState, [ResumeArgs]>('resume');

export const UPDATE_DESCRIPTIONS = {
  approve:
    'Approve the batch waiting at the quorum gate; rejected (with the reason) when no batch waits or the named batch is not the one waiting. Returns the batch approved. Input: {"batch"?: number, "by"?: string, "comment"?: string}',
  abort: 'Abort at the next safe point; rejected when the operation has ended or is already aborting. Returns what will be rolled back. Input: {"reason": string, "by"?: string}',
  pause: 'Hold the operation at its next gate; rejected when already paused or ended. Returns the new state. Input: {"reason"?: string, "by"?: string}',
  resume: 'Release a paused operation; rejected when it is not paused. Returns the new state. Input: {"by"?: string}',
} as const;

export type Phase =
  | 'preflight'
  | 'gate'
  // scaleOut
  | 'cert'
  | 'join'
  | 'config-sync'
  | 'start'
  | 'catch-up'
  | 'promote'
  // rollingRestart (and scaleIn: move-leader)
  | 'move-leader'
  | 'restart'
  | 'wait-ready'
  // scaleIn (and config-sync)
  | 'remove'
  | 'retire'
  // every operation
  | 'final-check'
  | 'compensating'
  | 'completed'
  | 'aborted'
  | 'failed';

export type MemberState =
  // scaleOut
  | 'voter'
  | 'planned'
  | 'cert'
  | 'learner'
  | 'starting'
  | 'catching-up'
  | 'promoting'
  | 'added'
  | 'rolled-back'
  // rollingRestart ('voter': not part of the restart)
  | 'pending'
  | 'restarting'
  | 'waiting-ready'
  | 'restarted'
  | 'restart-failed'
  // scaleIn ('voter': stays)
  | 'to-remove'
  | 'removing'
  | 'removed';

export interface OperationStatus {
  operation: OperationType;
  cluster: string;
  phase: Phase;
  /** The batch in progress. `member` names its members, comma-separated. */
  batch: { index: number; of: number; member: string; members?: string[] } | null;
  /**
   * The plan: voting members before and after, and the batches in order. A rolling restart
   * re-plans before each batch from live health; `batches` then shows what is expected next.
   */
  plan: { from: number; to: number; batches: string[] } | null;
  members: { name: string; state: MemberState }[];
  /** What the quorum gate waits for right now; empty when not at a gate. */
  waitingFor: string[];
  paused: PauseArgs | null;
  abort: AbortArgs | null;
  monitoring: QuorumVerdict | null;
  warnings: string[];
  /** The latest events, oldest first (at most 50). */
  events: { at: string; message: string }[];
}

export const statusQuery = defineQuery<OperationStatus>('status');
export const QUERY_DESCRIPTIONS = {
  status: 'The plan, the current step, every member state and what the gate waits for.',
} as const;
