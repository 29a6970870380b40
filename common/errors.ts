/**
 * Error messages for people. Pure (no Node APIs), so workflows, the client and the CLI share it.
 */

/**
 * The innermost useful message of an error chain: walks `.cause` and keeps the deepest message
 * of an error that is not a mere wrapper ("Activity task failed", "Workflow execution failed").
 */
export function innermostMessage(err: unknown, isWrapper: (e: Error) => boolean = () => false): string {
  let msg = err instanceof Error ? err.message : String(err);
  for (let e: unknown = err; e instanceof Error; e = (e as { cause?: unknown }).cause) {
    if (!isWrapper(e) && e.message) msg = e.message;
  }
  return msg;
}

/**
 * The `type` of every ApplicationFailure etcd-steward raises, defined once: clients and tests
 * match on these, and the Web UI shows them.
 */
export const FailureType = {
  /** The request or the cluster does not fit (bad spec, spec does not match the live cluster): nothing was changed. */
  InvalidInput: 'InvalidInput',
  /** The quorum gate stayed closed past gateTimeout. */
  GateTimeout: 'GateTimeout',
  /** An operation failed; its details carry the operation's result (outcome "failed"). */
  ScaleOutFailed: 'ScaleOutFailed',
  RollingRestartFailed: 'RollingRestartFailed',
  ScaleInFailed: 'ScaleInFailed',
  ReplaceMemberFailed: 'ReplaceMemberFailed',
  /** A member's service did not come up after start (its log tail is in the message). */
  StartFailed: 'StartFailed',
  /** A restarted member's running process does not show the requested env change. */
  EnvChangeNotApplied: 'EnvChangeNotApplied',
  /** The env change could not be checked in the new process (its /proc/PID/environ is unreadable). */
  EnvChangeUnverified: 'EnvChangeUnverified',
  /** The new etcd binary of a rolling upgrade is not on the member's host (nothing was stopped). */
  MissingBinary: 'MissingBinary',
  /** A member restarted onto a new binary does not report that binary's version. */
  BinaryNotInEffect: 'BinaryNotInEffect',
  /** A service command template in the spec does not do what it should (mainPid printed no pid). */
  BadServiceTemplate: 'BadServiceTemplate',
  /** MoveLeader's target cannot lead (not a member, a learner, never started). */
  BadLeaderTarget: 'BadLeaderTarget',
  PeerUrlTaken: 'PeerUrlTaken',
  LearnerGone: 'LearnerGone',
  MemberGone: 'MemberGone',
  NotALearner: 'NotALearner',
  NotAVoter: 'NotAVoter',
  MissingEnvFile: 'MissingEnvFile',
  /** The host's key does not match the pin, or the worker's key is refused: no retry can fix it. */
  SshHostKeyMismatch: 'Ssh-host-key-mismatch',
  SshAuth: 'Ssh-auth',
  /** The SSH user is not root and `sudo -n` refused (no sudoers entry, or one that asks a password). */
  SshSudo: 'Ssh-sudo',
  /** States to wait out (retryable, logged as benign). */
  TooManyLearners: 'TooManyLearners',
  UnhealthyCluster: 'UnhealthyCluster',
  LearnerNotInSync: 'LearnerNotInSync',
  /** A member to remove leads: leadership moves first. */
  MemberLeads: 'MemberLeads',
} as const;
export type FailureType = (typeof FailureType)[keyof typeof FailureType];
