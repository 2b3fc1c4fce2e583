// Per-port history kept between reads (and on disk between runs): the last
// counter sample, the recent intervals in which an error counter rose, and
// observed up/down transitions. Windowed thresholds ("120 symbol errors per
// hour") and flap detection need more than the last two samples; storing
// only the intervals that had increments keeps the file small. Pure.
import { type CounterChange, type CounterKey, type CounterSample, diffCounters, pmaKey } from "./counters.js";

export interface Increment {
  /** End of the interval. */
  atMs: number;
  intervalMs: number;
  /** Increments of tracked counters in the interval (non-zero only). */
  deltas: Record<CounterKey, number>;
}

export interface LinkTransition {
  atMs: number;
  /** true: the port came up; false: it went down. */
  up: boolean;
}

export interface PortHistory {
  sample: CounterSample;
  /** Last observed operational state (ACTIVE and LinkUp); undefined when unreadable. */
  up: boolean | undefined;
  increments: Increment[];
  transitions: LinkTransition[];
}

export interface HistoryPolicy {
  /** Counters whose increments are remembered (those thresholds and flap detection use). */
  trackedCounters: ReadonlySet<CounterKey>;
  /** Entries older than this are dropped: the longest window any rule looks at. */
  retainMs: number;
  /** Bound on entries per list, so a storm cannot grow the file without limit. */
  maxEntries: number;
}

export interface HistoryStep {
  history: PortHistory;
  change: CounterChange;
}

/** Folds one new sample of a port into its history. */
export function advancePortHistory(
  prev: PortHistory | undefined,
  sample: CounterSample,
  up: boolean | undefined,
  policy: HistoryPolicy,
): HistoryStep {
  const change = diffCounters(prev?.sample, sample);
  const cutoff = sample.atMs - policy.retainMs;
  const increments = (prev?.increments ?? []).filter((i) => i.atMs > cutoff && i.atMs <= sample.atMs);
  if (change.kind === "interval") {
    const deltas: Record<CounterKey, number> = {};
    for (const key of policy.trackedCounters) {
      const d = change.deltas[key];
      if (d !== undefined && d > 0n) deltas[key] = Number(d);
    }
    if (Object.keys(deltas).length > 0) increments.push({ atMs: sample.atMs, intervalMs: change.intervalMs, deltas });
  }
  const transitions = (prev?.transitions ?? []).filter((t) => t.atMs > cutoff && t.atMs <= sample.atMs);
  if (prev?.up !== undefined && up !== undefined && prev.up !== up) transitions.push({ atMs: sample.atMs, up });
  return {
    history: {
      sample,
      up,
      increments: increments.slice(-policy.maxEntries),
      transitions: transitions.slice(-policy.maxEntries),
    },
    change,
  };
}

/**
 * Increments of `key` within the last `windowMs`. When the current interval
 * is longer than the window (a per-second limit checked every minute), the
 * interval's average rate is scaled to the window instead.
 */
export function incrementsInWindow(
  history: PortHistory,
  change: CounterChange,
  key: CounterKey,
  windowMs: number,
  nowMs: number,
): number {
  if (change.kind === "interval" && change.intervalMs >= windowMs) {
    const d = change.deltas[key];
    return d === undefined ? 0 : (Number(d) * windowMs) / change.intervalMs;
  }
  let sum = 0;
  for (const inc of history.increments) if (inc.atMs > nowMs - windowMs) sum += inc.deltas[key] ?? 0;
  return sum;
}

/**
 * Link-down events within the window: the larger of observed up→down
 * transitions and `link_downed` increments, since the counter also catches
 * downs shorter than the sampling interval and an observed down may come
 * from the SM rather than the physical link.
 */
export function downEventsInWindow(history: PortHistory, windowMs: number, nowMs: number): number {
  const since = nowMs - windowMs;
  const observed = history.transitions.filter((t) => !t.up && t.atMs > since).length;
  let counted = 0;
  for (const inc of history.increments) if (inc.atMs > since) counted += inc.deltas[pmaKey("link_downed")] ?? 0;
  return Math.max(observed, counted);
}
