/**
 * The messages an operation understands, shared by workflows, the typed client and the CLI.
 * The Web UI lists them with their descriptions (set where the handlers are registered).
 */
import { defineQuery, defineSignal } from '@temporalio/workflow';

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
/** A monitoring system's verdict on the cluster: while the latest one is unhealthy the gate stays closed. */
export interface QuorumVerdict {
  healthy: boolean;
  reason?: string;
  source?: string;
}

export const approveSignal = defineSignal<[ApproveArgs?]>('approve');
export const abortSignal = defineSignal<[AbortArgs]>('abort');
export const pauseSignal = defineSignal<[PauseArgs?]>('pause');
export const resumeSignal = defineSignal<[ResumeArgs?]>('resume');
export const quorumSignal = defineSignal<[QuorumVerdict]>('quorum');

export const SIGNAL_DESCRIPTIONS = {
  approve: 'Let the operation past the quorum gate of the batch waiting for approval. Input: {"batch"?: number, "by"?: string, "comment"?: string}',
  abort: 'Stop at the next safe point and roll back a member that is not yet promoted. Input: {"reason": string, "by"?: string}',
  pause: 'Hold the operation at its next gate until resumed. Input: {"reason"?: string, "by"?: string}',
  resume: 'Release a paused operation. Input: {"by"?: string}',
  quorum: 'A monitoring verdict; while the latest is unhealthy the gate stays closed. Input: {"healthy": boolean, "reason"?: string, "source"?: string}',
} as const;

export type Phase =
  | 'preflight'
  | 'gate'
  | 'cert'
  | 'join'
  | 'config-sync'
  | 'start'
  | 'catch-up'
  | 'promote'
  | 'final-check'
  | 'compensating'
  | 'completed'
  | 'aborted'
  | 'failed';

export type MemberState = 'voter' | 'planned' | 'cert' | 'learner' | 'starting' | 'catching-up' | 'promoting' | 'added' | 'rolled-back';

export interface OperationStatus {
  operation: 'scaleOut';
  cluster: string;
  phase: Phase;
  /** The batch in progress (one member per batch). */
  batch: { index: number; of: number; member: string } | null;
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
