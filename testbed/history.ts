/**
 * Times read from a workflow's history (as `WorkflowHandle.fetchHistory()` returns it, or its
 * JSON form): when each activity was scheduled, when its final attempt started, when it closed,
 * how many attempts it took and with what input; workflow tasks and timers. What the bench says
 * about where an operation's time goes comes from these event times, recorded by the Temporal
 * server, never from counters the workflow keeps itself.
 */

export interface ActivitySpan {
  /** The ActivityTaskScheduled event's id. */
  id: string;
  type: string;
  /** The decoded input arguments (json/plain payloads; others undefined). */
  input: unknown[];
  /** ms since epoch. */
  scheduled: number;
  /** When the final attempt started (Temporal writes one started event, for the last attempt). */
  started: number | null;
  closed: number | null;
  outcome: 'completed' | 'failed' | 'timed-out' | 'canceled' | 'open';
  attempt: number;
  /** The failure of the attempt before the final one, if there was one. */
  lastFailure?: string;
}

export interface HistoryTimes {
  workflowStarted: number;
  workflowClosed: number | null;
  activities: ActivitySpan[];
  /** Workflow tasks: scheduled → completed (the time the workflow code took to decide, queueing included). */
  workflowTasks: { scheduled: number; started: number | null; completed: number | null }[];
  timers: { started: number; fired: number | null }[];
  events: number;
}

interface Ts {
  seconds?: unknown;
  nanos?: number | null;
}
interface Payload {
  metadata?: Record<string, Uint8Array | string> | null;
  data?: Uint8Array | string | null;
}
interface Ev {
  eventId?: unknown;
  eventTime?: Ts | string | null;
  [k: string]: unknown;
}

function ms(t: Ts | string | null | undefined): number {
  if (t === null || t === undefined) return NaN;
  if (typeof t === 'string') return Date.parse(t);
  return Number(String(t.seconds ?? 0)) * 1000 + Math.floor((t.nanos ?? 0) / 1e6);
}

function bytes(v: Uint8Array | string | null | undefined): Buffer {
  if (v === null || v === undefined) return Buffer.alloc(0);
  return typeof v === 'string' ? Buffer.from(v, 'base64') : Buffer.from(v);
}

function decode(p: Payload): unknown {
  if (bytes(p.metadata?.encoding).toString('utf8') !== 'json/plain') return undefined;
  try {
    return JSON.parse(bytes(p.data).toString('utf8'));
  } catch {
    return undefined;
  }
}

/** Reads the times out of a history. */
export function historyTimes(history: unknown): HistoryTimes {
  const events = ((history as { events?: unknown[] }).events ?? []) as Ev[];
  const byScheduled = new Map<string, ActivitySpan>();
  const activities: ActivitySpan[] = [];
  const wfTasks = new Map<string, HistoryTimes['workflowTasks'][number]>();
  const timers = new Map<string, HistoryTimes['timers'][number]>();
  let workflowStarted = NaN;
  let workflowClosed: number | null = null;
  const attr = <T>(e: Ev, name: string) => e[name] as T | null | undefined;
  for (const e of events) {
    const at = ms(e.eventTime);
    const id = String(e.eventId);
    if (attr(e, 'workflowExecutionStartedEventAttributes')) workflowStarted = at;
    for (const k of ['Completed', 'Failed', 'TimedOut', 'Canceled', 'Terminated', 'ContinuedAsNew']) if (attr(e, `workflowExecution${k}EventAttributes`)) workflowClosed = at;

    const sch = attr<{ activityType?: { name?: string }; input?: { payloads?: Payload[] } }>(e, 'activityTaskScheduledEventAttributes');
    if (sch) {
      const span: ActivitySpan = { id, type: sch.activityType?.name ?? '?', input: (sch.input?.payloads ?? []).map(decode), scheduled: at, started: null, closed: null, outcome: 'open', attempt: 1 };
      byScheduled.set(id, span);
      activities.push(span);
    }
    const st = attr<{ scheduledEventId?: unknown; attempt?: number; lastFailure?: { message?: string } }>(e, 'activityTaskStartedEventAttributes');
    if (st) {
      const span = byScheduled.get(String(st.scheduledEventId));
      if (span) {
        span.started = at;
        span.attempt = st.attempt ?? 1;
        if (st.lastFailure?.message) span.lastFailure = st.lastFailure.message;
      }
    }
    for (const [k, outcome] of [
      ['activityTaskCompletedEventAttributes', 'completed'],
      ['activityTaskFailedEventAttributes', 'failed'],
      ['activityTaskTimedOutEventAttributes', 'timed-out'],
      ['activityTaskCanceledEventAttributes', 'canceled'],
    ] as const) {
      const c = attr<{ scheduledEventId?: unknown }>(e, k);
      const span = c ? byScheduled.get(String(c.scheduledEventId)) : undefined;
      if (span) {
        span.closed = at;
        span.outcome = outcome;
      }
    }

    if (attr(e, 'workflowTaskScheduledEventAttributes')) wfTasks.set(id, { scheduled: at, started: null, completed: null });
    const wst = attr<{ scheduledEventId?: unknown }>(e, 'workflowTaskStartedEventAttributes');
    if (wst) {
      const t = wfTasks.get(String(wst.scheduledEventId));
      if (t) t.started = at;
    }
    for (const k of ['workflowTaskCompletedEventAttributes', 'workflowTaskFailedEventAttributes', 'workflowTaskTimedOutEventAttributes']) {
      const c = attr<{ scheduledEventId?: unknown }>(e, k);
      const t = c ? wfTasks.get(String(c.scheduledEventId)) : undefined;
      if (t) t.completed = at;
    }

    const ts = attr<{ timerId?: string }>(e, 'timerStartedEventAttributes');
    if (ts) timers.set(ts.timerId ?? id, { started: at, fired: null });
    const tf = attr<{ timerId?: string }>(e, 'timerFiredEventAttributes');
    if (tf) {
      const t = timers.get(tf.timerId ?? '');
      if (t) t.fired = at;
    }
  }
  return { workflowStarted, workflowClosed, activities, workflowTasks: [...wfTasks.values()], timers: [...timers.values()], events: events.length };
}

/** Total length of the union of [from, to] intervals, ms. */
export function unionMs(intervals: [number, number][]): number {
  const sorted = intervals.filter(([a, b]) => b > a).sort((x, y) => x[0] - y[0]);
  let total = 0;
  let cur: [number, number] | null = null;
  for (const [a, b] of sorted) {
    if (cur && a <= cur[1]) cur[1] = Math.max(cur[1], b);
    else {
      if (cur) total += cur[1] - cur[0];
      cur = [a, b];
    }
  }
  if (cur) total += cur[1] - cur[0];
  return total;
}
