/**
 * The steps of a rolling restart: read a member's main pid, restart it (applying an env-file
 * change while it is stopped, verified in the new process's environment), move the leadership,
 * and wait until a restarted member is ready again. Each one is idempotent:
 *
 * - `restartMember` is told the pid the member had before (`pidBefore`); a live process with a
 *   different pid, an env file that already holds the change and the change in that process's
 *   environment mean the restart was done (a retry after a lost reply): it is not done twice.
 *   The env file's values before the change are kept next to it (`<envFile>.steward-previous`),
 *   so a retry still reports the original values, which the workflow needs to undo the change.
 * - `moveLeader` does nothing when the target already leads.
 * - `readMemberPid` and `awaitMemberReady` only read.
 */
import { ApplicationFailure } from '@temporalio/common';
import { FailureType } from '../common/errors';
import { type Member, expand, memberPaths } from '../spec/cluster';
import type { EnvChange } from '../spec/operations';
import { type EtcdCredentials, etcdClient, observeCluster } from './etcd';
import { applyEnvChange, parseEnvFile } from './envfile';
import { type MemberRef, classifySsh, sshTarget } from './host';
import { MemberSampler, SAMPLE_EVERY_MS, pollUntilTwice } from './membership';
import { type ExecResult, type SshIdentity, sshExec, shq } from './ssh';

export interface MemberProcess {
  /** etcd's main pid; null when it does not run. */
  pid: number | null;
  /** When `envKeys` were asked for: each one's value in the member's env file (null: absent). */
  env?: Record<string, string | null>;
}

export interface RestartResult {
  member: string;
  /** As given by the caller. */
  pidBefore: number | null;
  /** The new main pid, running. */
  pid: number;
  /** false when this call found the member already restarted (a retry after the work was done). */
  restarted: boolean;
  /** Keys whose value in the env file this call changed (empty when no change, or already applied). */
  envChanged: string[];
  /**
   * For each key of the change: its value in the env file before the change (null: absent),
   * also on a retry that found the change applied. Applying it back is the undo.
   */
  previous: Record<string, string | null>;
  /** For each key of the change: its value in the new process's environment (null: absent). */
  running: Record<string, string | null>;
  /** From the stop command's start to the start command's return, measured on the host (0 when not restarted by this call). */
  downMs: number;
}

export interface RestartInput extends MemberRef {
  pidBefore: number | null;
  change?: EnvChange;
  /**
   * A binary change while the member is stopped: `install` the binary at that path on the host
   * (`{name}` expanded) at layout.etcdBinary, keeping the one there as
   * `<etcdBinary>.steward-previous`; or `restore` that kept one (the undo).
   */
  binary?: { install: string } | { restore: true };
}

/** Details of a StartFailed failure, for the workflow (it undoes the change with `previous`). */
export interface StartFailedDetails {
  member: string;
  envChanged: string[];
  previous: Record<string, string | null>;
  logTail: string;
}

export interface ReadyResult {
  id: string;
  tookMs: number;
  applied: string;
  leaderApplied: string;
  samples: number;
  /** The etcd version the member reports once ready. */
  version: string;
}

export interface MoveLeaderInput {
  endpoints: string[];
  to: { name: string; peerURLs: string[] };
}

export interface MoveLeaderResult {
  /** Member names. */
  from: string;
  to: string;
  /** false when the target already led. */
  moved: boolean;
}

/** Marks the lines of the host scripts' output that the activities parse. */
export const MARK = '@@etcd-steward@@';
/** How long a leadership transfer may take to show on the target before the attempt fails (retryable). */
const MOVE_LEADER_WAIT_MS = 5_000;

const errText = (e: unknown) => (e instanceof Error ? e.message.split('\n')[0]! : String(e));

/** A service command template run with stdin closed (the restart script's stdin carries the env file). */
export function noStdin(cmd: string): string {
  return `{ ${cmd}\n} </dev/null`;
}

/** The last lines of a command's output, for messages. */
function outputTail(r: ExecResult, lines = 6): string {
  return (r.stderr.trim() || r.stdout.trim()).split('\n').slice(-lines).join('\n');
}

/** A pid as printed by the `mainPid` template: 0 or nothing means not running. */
export function parsePid(out: string, member: string, cmd: string): number | null {
  const s = out.trim();
  if (s === '' || s === '0') return null;
  if (!/^\d+$/.test(s)) throw ApplicationFailure.nonRetryable(`${member}: \`${cmd}\` printed "${s.slice(0, 80)}", not a pid: check service.mainPid in the cluster spec`, FailureType.BadServiceTemplate);
  return Number(s);
}

/** A change in a canonical form, to recognise the one a sidecar file was written for. */
function changeKey(change: EnvChange | undefined): string {
  const set = Object.entries(change?.set ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return JSON.stringify({ set, unset: [...(change?.unset ?? [])].sort() });
}

interface Sidecar {
  pidBefore: number | null;
  change: string;
  previous: Record<string, string | null>;
}

function parseSidecar(text: string): Sidecar | null {
  try {
    const v = JSON.parse(text) as Partial<Sidecar>;
    if (typeof v.change !== 'string' || typeof v.previous !== 'object' || v.previous === null || !('pidBefore' in v)) return null;
    return v as Sidecar;
  } catch {
    return null;
  }
}

/** The lines between `MARK name` and the next marker line of a host script's output. */
export function section(lines: string[], name: string): string[] {
  const i = lines.indexOf(`${MARK} ${name}`);
  if (i < 0) return [];
  const out: string[] = [];
  for (const l of lines.slice(i + 1)) {
    if (l.startsWith(MARK)) break;
    out.push(l);
  }
  return out;
}

/**
 * The host side of restartMember, one script: reads the main pid; unless the member already
 * runs with a new pid, no env-file change is pending and the process's environment shows the
 * change, stops it, writes the sidecar and the env file (from stdin, atomically, keeping the
 * file's mode and owner) when they change, starts it and reads the new pid; prints the new
 * process's values of the change's variables from /proc/<pid>/environ.
 * On a failed start it prints the start command's output and the `logs` template's and exits 12.
 */
export function restartScript(o: {
  envFile: string;
  sidecarJson: string | null;
  writeEnv: boolean;
  pidBefore: number | null;
  change: EnvChange | undefined;
  /**
   * Installs `source` at `target` while the member is stopped (a copy, renamed into place: a
   * link there is replaced, never written through), the binary there copied to `keep` first
   * unless `keep` is null. Already done when `target` has `source`'s bytes and so does the
   * running process's executable.
   */
  binary?: { source: string; target: string; keep: string | null };
  service: { mainPid: string; isActive: string; stop: string; start: string; logs: string };
}): string {
  const f = shq(o.envFile);
  const set = Object.entries(o.change?.set ?? {});
  const unset = o.change?.unset ?? [];
  const keys = [...set.map(([k]) => k), ...unset];
  for (const k of keys) if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) throw new Error(`environment variable name "${k}" is not valid`);
  const logs = [`echo "$M logs"`, `${noStdin(o.service.logs)} 2>&1 | tail -n 20`];
  return [
    'set -u',
    `M=${shq(MARK)}`,
    `before=${o.pidBefore ?? ''}`,
    'now() { date +%s%3N; }',
    // The main pid, or 0; exit 20 (after saying what it printed) when that is not a number.
    'main_pid() {',
    '  local out rc',
    `  out=$(${noStdin(o.service.mainPid)} 2>/dev/null); rc=$?`,
    '  if [ $rc != 0 ]; then echo "$M bad-pid (it exited $rc)"; return 1; fi',
    `  out=$(printf '%s' "$out" | tr -d '[:space:]')`,
    '  case $out in',
    "    '') echo 0 ;;",
    '    *[!0-9]*) echo "$M bad-pid $out"; return 1 ;;',
    '    *) echo "$out" ;;',
    '  esac',
    '}',
    `active() { ${noStdin(o.service.isActive)} >/dev/null 2>&1; }`,
    // The change is in process $1's environment (so a live process with another pid is the restart done).
    'env_ok() {',
    ...(keys.length === 0
      ? ['  :']
      : [
          '  local e',
          `  e=$(tr '\\0' '\\n' < "/proc/$1/environ" 2>/dev/null) || return 1`,
          ...set.map(([k, v]) => `  printf '%s\\n' "$e" | grep -qxF ${shq(`${k}=${v}`)} || return 1`),
          ...unset.map((k) => `  ! printf '%s\\n' "$e" | grep -q '^${k}=' || return 1`),
        ]),
    '}',
    // tmp file in the same directory, mode and owner of the env file (0640 if it has none), then rename
    'write_atomic() {',
    '  local tmp',
    '  tmp=$(mktemp "$1.XXXXXX") || return 1',
    '  if ! cat > "$tmp"; then rm -f "$tmp"; return 1; fi',
    `  chmod --reference=${f} "$tmp" 2>/dev/null || chmod 0640 "$tmp"`,
    `  chown --reference=${f} "$tmp" 2>/dev/null || true`,
    '  mv -f "$tmp" "$1" || { rm -f "$tmp"; return 1; }',
    '}',
    ...(o.binary ? binaryFunctions(o.binary) : ['bin_ok() { :; }']),
    'pid=$(main_pid) || { echo "$pid"; exit 20; }',
    `if [ ${o.writeEnv ? 1 : 0} = 0 ] && [ "$pid" != 0 ] && [ "$pid" != "$before" ] && active && env_ok "$pid" && bin_ok "$pid"; then`,
    '  echo "$M already $pid"',
    'else',
    ...(o.binary ? ['  have_source || { echo "$M no-binary"; exit 16; }'] : []),
    '  t0=$(now)',
    `  if ! out=$(${noStdin(o.service.stop)} 2>&1); then echo "$M stop-failed"; printf '%s\\n' "$out" | tail -n 20; exit 11; fi`,
    '  t1=$(now)',
    o.sidecarJson === null ? '  :' : `  printf '%s\\n' ${shq(o.sidecarJson)} | write_atomic ${shq(`${o.envFile}.steward-previous`)} || { echo "$M write-failed sidecar"; exit 13; }`,
    o.writeEnv ? `  write_atomic ${f} || { echo "$M write-failed env"; exit 13; }` : '  :',
    ...(o.binary ? ['  install_bin || { echo "$M install-failed"; exit 15; }'] : []),
    '  t2=$(now)',
    `  if ! out=$(${noStdin(o.service.start)} 2>&1); then`,
    '    echo "$M start-failed"',
    `    printf '%s\\n' "$out" | tail -n 20`,
    ...logs.map((l) => `    ${l}`),
    '    exit 12',
    '  fi',
    '  t3=$(now)',
    '  pid=$(main_pid) || { echo "$pid"; exit 20; }',
    '  if [ "$pid" = 0 ] || ! active; then',
    '    echo "$M not-active $pid"',
    ...logs.map((l) => `    ${l}`),
    '    exit 14',
    '  fi',
    '  echo "$M restarted $pid $((t1 - t0)) $((t3 - t2)) $((t3 - t0))"',
    'fi',
    'echo "$M environ"',
    keys.length === 0
      ? ':'
      : `if [ -r "/proc/$pid/environ" ]; then tr '\\0' '\\n' < "/proc/$pid/environ" | grep -E '^(${keys.join('|')})=' ; else echo "$M environ-unreadable"; fi`,
    'echo "$M end"',
    'exit 0',
  ].join('\n');
}

/** The restart script's shell functions for a binary change (see restartScript's `binary`). */
function binaryFunctions(b: { source: string; target: string; keep: string | null }): string[] {
  const [src, tgt] = [shq(b.source), shq(b.target)];
  return [
    // process $1 runs the binary the target now holds, and the target holds the source's bytes
    `bin_ok() { cmp -s ${src} ${tgt} && cmp -s "/proc/$1/exe" ${tgt}; }`,
    `have_source() { cmp -s ${src} ${tgt} || [ -f ${src} -a -x ${src} ]; }`,
    'install_bin() {',
    '  local tmp',
    `  cmp -s ${src} ${tgt} && return 0`,
    ...(b.keep === null
      ? []
      : [`  if [ -e ${tgt} ]; then tmp=$(mktemp ${shq(`${b.keep}.XXXXXX`)}) && cp -L ${tgt} "$tmp" && chmod 0755 "$tmp" && mv -f "$tmp" ${shq(b.keep)} || { rm -f "$tmp"; return 1; }; fi`]),
    `  tmp=$(mktemp ${shq(`${b.target}.XXXXXX`)}) || return 1`,
    `  if ! cp -L ${src} "$tmp"; then rm -f "$tmp"; return 1; fi`,
    `  chmod --reference=${tgt} "$tmp" 2>/dev/null || chmod 0755 "$tmp"`,
    `  chown --reference=${tgt} "$tmp" 2>/dev/null || true`,
    `  mv -f "$tmp" ${tgt} || { rm -f "$tmp"; return 1; }`,
    '}',
  ];
}

export function restartActivities(ssh: SshIdentity, creds: EtcdCredentials) {
  return {
    /**
     * The member's main pid from the `mainPid` service template (null when etcd does not run)
     * and, when `envKeys` are given, their values in its env file, in the same SSH round trip.
     */
    async readMemberPid({ spec, member, envKeys }: MemberRef & { envKeys?: string[] }): Promise<MemberProcess> {
      const cmd = expand(spec.service.mainPid, member.name);
      const envFile = memberPaths(spec, member).envFile;
      const withEnv = envKeys !== undefined && envKeys.length > 0;
      const script = withEnv ? [`out=$(${noStdin(cmd)}) || exit $?`, `printf '%s\\n' "$out"`, `echo '${MARK} env'`, `cat ${shq(envFile)}`].join('\n') : noStdin(cmd);
      const r = await classifySsh(sshExec(sshTarget(member), ssh, script));
      if (r.code !== 0) {
        if (withEnv && r.stdout.includes(`${MARK} env`)) throw ApplicationFailure.nonRetryable(`${member.name}: ${envFile} cannot be read: ${outputTail(r)}`, FailureType.MissingEnvFile);
        throw new Error(`${member.name}: \`${cmd}\` exited ${r.code ?? r.signal}: ${outputTail(r)}`);
      }
      if (!withEnv) return { pid: parsePid(r.stdout, member.name, cmd) };
      const at = r.stdout.indexOf(`${MARK} env\n`);
      const vars = parseEnvFile(r.stdout.slice(at + `${MARK} env\n`.length));
      return { pid: parsePid(r.stdout.slice(0, at), member.name, cmd), env: Object.fromEntries(envKeys.map((k) => [k, Object.hasOwn(vars, k) ? vars[k]! : null])) };
    },

    /**
     * Restarts the member, applying `change` to its env file while it is stopped, in two SSH
     * round trips (read the env file; one script). Already restarted (a live process whose pid
     * is not `pidBefore`, the env file holds the change and so does the process's environment):
     * nothing is stopped. With `pidBefore` null (the member was down) it applies the change and starts.
     * A start that fails is non-retryable (`StartFailed`, with the log tail; details carry
     * `previous` for the undo); a change not seen in the new process is `EnvChangeNotApplied`.
     */
    async restartMember({ spec, member, pidBefore, change, binary }: RestartInput): Promise<RestartResult> {
      const target = sshTarget(member);
      const { envFile, etcdBinary } = memberPaths(spec, member);
      const kept = `${etcdBinary}.steward-previous`;
      const bin = binary && ('install' in binary ? { source: expand(binary.install, member.name), target: etcdBinary, keep: kept } : { source: kept, target: etcdBinary, keep: null });
      const sidecarFile = `${envFile}.steward-previous`;
      const svc = {
        mainPid: expand(spec.service.mainPid, member.name),
        isActive: expand(spec.service.isActive, member.name),
        stop: expand(spec.service.stop, member.name),
        start: expand(spec.service.start, member.name),
        logs: expand(spec.service.logs, member.name),
      };

      // 1. The env file and the record of the last change's original values.
      const read = await classifySsh(
        sshExec(target, ssh, [`f=${shq(envFile)}`, `if [ ! -r "$f" ]; then echo "${MARK} no-env-file"; exit 0; fi`, 'cat "$f"', `printf '\\n%s\\n' '${MARK} sidecar'`, `cat ${shq(sidecarFile)} 2>/dev/null || true`].join('\n')),
      );
      if (read.code !== 0) throw new Error(`${member.name}: cannot read ${envFile}: ${outputTail(read)}`);
      if (read.stdout.startsWith(`${MARK} no-env-file`)) throw ApplicationFailure.nonRetryable(`${member.name}: ${envFile} is missing or cannot be read; a member to restart needs its env file`, FailureType.MissingEnvFile);
      const sep = `\n${MARK} sidecar\n`;
      const at = read.stdout.lastIndexOf(sep);
      if (at < 0) throw new Error(`${member.name}: unexpected output reading ${envFile}`);
      const envText = read.stdout.slice(0, at);
      const sidecar = parseSidecar(read.stdout.slice(at + sep.length));

      const keys = change ? [...Object.keys(change.set), ...change.unset] : [];
      const cur = parseEnvFile(envText);
      const { text: nextText, changed } = change ? applyEnvChange(envText, change) : { text: envText, changed: [] as string[] };
      const writeEnv = changed.length > 0;
      const key = changeKey(change);
      // A retry after the env file was written: the sidecar written for this very change keeps the originals.
      const fromSidecar = !writeEnv && keys.length > 0 && sidecar !== null && sidecar.pidBefore === pidBefore && sidecar.change === key && keys.every((k) => Object.hasOwn(sidecar.previous, k));
      const previous: Record<string, string | null> = Object.fromEntries(keys.map((k) => [k, fromSidecar ? sidecar.previous[k]! : Object.hasOwn(cur, k) ? cur[k]! : null]));

      // 2. Stop, write, start, read back: one script.
      const script = restartScript({
        envFile,
        sidecarJson: writeEnv ? JSON.stringify({ pidBefore, change: key, previous } satisfies Sidecar) : null,
        writeEnv,
        pidBefore,
        change,
        ...(bin ? { binary: bin } : {}),
        service: svc,
      });
      const r = await classifySsh(sshExec(target, ssh, script, { timeoutMs: 10 * 60_000, ...(writeEnv ? { stdin: nextText } : {}) }));
      const lines = r.stdout.split('\n');
      const marker = (name: string) => lines.find((l) => l.startsWith(`${MARK} ${name}`));
      if (r.code !== 0) {
        const bad = marker('bad-pid');
        if (bad) {
          const what = bad.slice(`${MARK} bad-pid `.length);
          throw ApplicationFailure.nonRetryable(`${member.name}: \`${svc.mainPid}\` ${what.startsWith('(it exited') ? `failed ${what}` : `printed "${what}", not a pid`}: check service.mainPid in the cluster spec`, FailureType.BadServiceTemplate);
        }
        if (r.code === 16) {
          throw ApplicationFailure.nonRetryable(`${member.name}: no etcd binary at ${bin!.source} on its host (nothing was stopped): put the new binary there, executable, and retry`, FailureType.MissingBinary);
        }
        if (r.code === 15) throw new Error(`${member.name}: installing ${bin!.source} at ${bin!.target} failed: ${r.stderr.trim().split('\n').slice(-3).join('\n')}`);
        if (r.code === 11) throw new Error(`${member.name}: \`${svc.stop}\` failed: ${section(lines, 'stop-failed').slice(-6).join('\n')}`);
        if (r.code === 13) throw new Error(`${member.name}: writing ${envFile} failed: ${r.stderr.trim().split('\n').slice(-3).join('\n')}`);
        if (r.code === 12 || r.code === 14) {
          const logTail = section(lines, 'logs').join('\n').trim();
          const what =
            r.code === 12
              ? `\`${svc.start}\` failed: ${section(lines, 'start-failed').slice(-6).join('\n').trim() || '(no output)'}`
              : `the service is not running right after \`${svc.start}\` (main pid ${marker('not-active')!.split(' ')[2]})`;
          const message = `${member.name}: ${what}\nlast lines of its log (\`${svc.logs}\`):\n${logTail || '(empty)'}`;
          const details: StartFailedDetails = { member: member.name, envChanged: changed, previous, logTail };
          throw ApplicationFailure.create({ message, type: FailureType.StartFailed, nonRetryable: true, details: [details] });
        }
        throw new Error(`${member.name}: the restart script exited ${r.code ?? r.signal}: ${outputTail(r)}`);
      }

      const done = marker('restarted') ?? marker('already');
      if (!done) throw new Error(`${member.name}: unexpected output from the restart script: ${outputTail(r)}`);
      const [, state, pidText, , , total] = done.slice(MARK.length).split(' ');
      const pid = Number(pidText);
      const restarted = state === 'restarted';

      // 3. The change as the new process sees it.
      const running: Record<string, string | null> = Object.fromEntries(keys.map((k) => [k, null]));
      if (keys.length > 0 && marker('environ-unreadable')) {
        throw ApplicationFailure.nonRetryable(`${member.name}: /proc/${pid}/environ cannot be read by ${member.ssh.user}, so the env change cannot be verified`, FailureType.EnvChangeUnverified, { member: member.name, envChanged: writeEnv ? changed : [], previous });
      }
      for (const l of section(lines, 'environ')) {
        const eq = l.indexOf('=');
        const k = l.slice(0, eq);
        if (eq > 0 && Object.hasOwn(running, k)) running[k] = l.slice(eq + 1);
      }
      const wrong = [
        ...Object.entries(change?.set ?? {}).filter(([k, v]) => running[k] !== v).map(([k, v]) => `${k} should be "${v}", the process has ${running[k] === null ? 'none' : `"${running[k]}"`}`),
        ...(change?.unset ?? []).filter((k) => running[k] !== null).map((k) => `${k} should be unset, the process has "${running[k]}"`),
      ];
      if (wrong.length) {
        throw ApplicationFailure.nonRetryable(
          `${member.name}: the env change is not in effect in the running etcd (pid ${pid}${restarted ? ', just restarted' : ''}): ${wrong.join('; ')}`,
          FailureType.EnvChangeNotApplied,
          { member: member.name, envChanged: writeEnv ? changed : [], previous, running },
        );
      }
      return { member: member.name, pidBefore, pid, restarted, envChanged: writeEnv ? changed : [], previous, running, downMs: restarted ? Number(total) : 0 };
    },

    /**
     * Makes `to` the leader: MoveLeader sent to the current leader's own client URL (etcd
     * requires it there), then waits until `to` reports itself leader. A target that already
     * leads: nothing to do (moved: false). A target that is not a started voting member:
     * non-retryable.
     */
    async moveLeader({ endpoints, to }: MoveLeaderInput): Promise<MoveLeaderResult> {
      const o = await observeCluster(creds, { endpoints, timeoutMs: 5_000 });
      if (o.members.length === 0) throw new Error(o.problems.join('; '));
      const target = o.members.find((m) => m.peerURLs.some((u) => to.peerURLs.includes(u)));
      if (!target) throw ApplicationFailure.nonRetryable(`${to.name} (peer URL ${to.peerURLs.join(',')}) is not a member of the cluster: leadership cannot move to it`, FailureType.BadLeaderTarget);
      if (target.isLearner) throw ApplicationFailure.nonRetryable(`${to.name} (${target.id}) is a learner: only a voting member can become leader`, FailureType.BadLeaderTarget);
      if (target.name === '' || target.clientURLs.length === 0) throw ApplicationFailure.nonRetryable(`${to.name} (${target.id}) has never started: it cannot become leader`, FailureType.BadLeaderTarget);
      const name = target.name;
      if (o.leaderId === target.id) return { from: name, to: name, moved: false };
      if (o.leaderId === null) throw new Error(`no leader to move from: ${o.problems.join('; ')}`);
      const leader = o.members.find((m) => m.id === o.leaderId)!;
      const ts = o.statuses.find((s) => s.id === target.id);
      if (!ts?.ok) throw new Error(`${name} does not answer (${ts?.error ?? 'no status'}): leadership is not moved to a member that is down`);

      const c = etcdClient([leader.clientURLs[0]!], creds, { retry: false, timeoutMs: 15_000 });
      try {
        await c.maintenance.moveLeader({ targetID: target.id });
      } catch (e) {
        // "not leader": the leadership moved meanwhile; the retry finds out where to
        throw new Error(`MoveLeader ${leader.name} -> ${name} failed: ${errText(e)}`);
      } finally {
        c.close();
      }
      const deadline = Date.now() + MOVE_LEADER_WAIT_MS;
      for (;;) {
        const tc = etcdClient([target.clientURLs[0]!], creds, { retry: false, timeoutMs: 2_000 });
        let seen: string;
        try {
          seen = String((await tc.maintenance.status()).leader);
          if (seen === target.id) return { from: leader.name, to: name, moved: true };
        } catch (e) {
          seen = `no answer: ${errText(e)}`;
        } finally {
          tc.close();
        }
        if (Date.now() > deadline) throw new Error(`MoveLeader ${leader.name} -> ${name} was accepted, but ${name} does not report itself leader within ${MOVE_LEADER_WAIT_MS} ms (it sees leader ${seen})`);
        await new Promise((r) => setTimeout(r, 100));
      }
    },

    /**
     * Waits until a (re)started voting member serves again: it answers Status on its own client
     * URL, is a voter in the member list, sees a leader that agrees it leads, and its applied
     * index is within `maxIndexSpread` of the leader's, on two samples in a row. Heartbeats what
     * it sees; cancellable (abort) like awaitCatchUp.
     */
    async awaitMemberReady({ endpoints, member, maxIndexSpread, pollMs }: { endpoints: string[]; member: Pick<Member, 'name' | 'peerURLs' | 'clientURLs'>; maxIndexSpread: number; pollMs?: number }): Promise<ReadyResult> {
      const sampler = new MemberSampler(creds, endpoints);
      const r = await pollUntilTwice(
        async () => {
          const s = await sampler.sample(member, FailureType.MemberGone);
          if (s.isLearner) throw ApplicationFailure.nonRetryable(`${member.name} (${s.id}) is a learner, not a voting member`, FailureType.NotAVoter);
          return s;
        },
        (s) => ({
          ok: s.leaderAgrees && s.lag <= maxIndexSpread,
          details: { leader: s.leaderName, applied: s.applied, leaderApplied: s.leaderApplied, lag: s.lag, ...(s.leaderAgrees ? {} : { waiting: `${s.leaderName} does not report itself leader yet` }) },
        }),
        pollMs ?? SAMPLE_EVERY_MS,
      ).finally(() => sampler.close());
      return { id: r.sample.id, tookMs: r.tookMs, applied: r.sample.applied, leaderApplied: r.sample.leaderApplied, samples: r.samples, version: r.sample.version };
    },
  };
}
