// The agent's event log: every event gets the next sequence number, the last `capacity` events are
// held for watchers that resume, and listeners hear each append in order. Sequence numbers start at
// the agent's start time in microseconds, so they keep increasing across restarts and a watcher
// resuming from a previous run's number gets a gap, never someone else's events.

export type EventKindName = "xid" | "ecc" | "health" | "mig" | "lease" | "link" | "gpu_lost";

export type EventDetail =
  | {
      readonly type: "xid";
      readonly code: number;
      readonly gpuInstanceId: number | undefined;
      readonly description: string;
      readonly action: string;
    }
  | {
      readonly type: "health";
      readonly previous: string;
      readonly current: string;
      readonly reasons: readonly string[];
    }
  | {
      readonly type: "lease";
      readonly workloadId: string;
      readonly change: "allocated" | "released" | "lost";
      readonly deviceUuid: string;
    }
  | {
      readonly type: "link";
      readonly device: string;
      readonly port: number;
      readonly previous: string;
      readonly current: string;
      readonly reasons: readonly string[];
    }
  | { readonly type: "mig"; readonly change: string }
  | {
      readonly type: "ecc";
      readonly errorType: "single_bit" | "double_bit";
      readonly volatileCorrected: number | undefined;
      readonly volatileUncorrected: number | undefined;
    }
  | { readonly type: "none" };

export interface AgentEventInit {
  readonly kind: EventKindName;
  readonly atMs: number;
  readonly gpuIndex: number | undefined;
  readonly gpuUuid: string;
  readonly message: string;
  readonly detail: EventDetail;
}

export interface AgentEvent extends AgentEventInit {
  readonly seq: number;
}

export type EventListener = (event: AgentEvent) => void;

export class EventLog {
  readonly #capacity: number;
  readonly #ring: (AgentEvent | undefined)[];
  readonly #listeners = new Set<EventListener>();
  readonly #firstSeq: number;
  #nextSeq: number;

  constructor(capacity: number, firstSeq: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError("event log capacity must be ≥ 1");
    this.#capacity = capacity;
    this.#ring = new Array(capacity);
    this.#firstSeq = firstSeq;
    this.#nextSeq = firstSeq;
  }

  /** The sequence number of the latest event; firstSeq − 1 before any. */
  get lastSeq(): number {
    return this.#nextSeq - 1;
  }

  /** The oldest sequence number still held (lastSeq + 1 when none are). */
  get oldestHeldSeq(): number {
    return Math.max(this.#firstSeq, this.#nextSeq - this.#capacity);
  }

  get capacity(): number {
    return this.#capacity;
  }

  append(init: AgentEventInit): AgentEvent {
    const event: AgentEvent = { ...init, seq: this.#nextSeq++ };
    this.#ring[event.seq % this.#capacity] = event;
    for (const listener of this.#listeners) listener(event);
    return event;
  }

  /** The held event with `seq`, if it is still held. */
  get(seq: number): AgentEvent | undefined {
    if (seq < this.oldestHeldSeq || seq > this.lastSeq) return undefined;
    return this.#ring[seq % this.#capacity];
  }

  /**
   * Events after `seq` that are still held, at most `limit`, and the range (if any) that is no
   * longer held: from `gapFrom` to `gapTo` inclusive.
   */
  after(
    seq: number,
    limit = Number.POSITIVE_INFINITY,
  ): { events: AgentEvent[]; gap: { from: number; to: number } | undefined } {
    const oldest = this.oldestHeldSeq;
    let gap: { from: number; to: number } | undefined;
    let from = seq + 1;
    if (from < oldest && this.lastSeq >= from) {
      gap = { from, to: oldest - 1 };
      from = oldest;
    } else if (from < this.#firstSeq && this.lastSeq < this.#firstSeq) {
      // Resuming from an earlier run with nothing logged yet in this one.
      gap = { from, to: this.#firstSeq - 1 };
    }
    const events: AgentEvent[] = [];
    for (let s = Math.max(from, oldest); s <= this.lastSeq && events.length < limit; s++) {
      const e = this.#ring[s % this.#capacity];
      if (e) events.push(e);
    }
    return { events, gap };
  }

  subscribe(listener: EventListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
}
