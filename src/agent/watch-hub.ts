// WatchNode fan-out. Each watcher gets a full snapshot first, then events in sequence order and
// samples at its interval. Writing is event-driven and respects each stream's backpressure: a slow
// watcher only ever holds a cursor into the shared event log and its latest due sample, so it never
// delays the sampler or other watchers; it misses intermediate samples (and is told how many), never
// events (while the log still holds them; past that it is told the gap). Messages are encoded once
// and the same bytes go to every stream.
import { create } from "@bufbuild/protobuf";
import type { ServerWritableStream } from "@grpc/grpc-js";
import {
  type Lease as LeaseProto,
  type WatchNodeRequest,
  type WatchNodeResponse,
  WatchNodeResponseSchema,
} from "../gen/tessera/v1/agent_pb.js";
import type { Node } from "../gen/tessera/v1/node_pb.js";
import type { NodeSample } from "../gen/tessera/v1/telemetry_pb.js";
import { Encoded, encodeMessage } from "../rpc/grpc-adapter.js";
import type { AgentEvent, EventLog } from "../telemetry/event-log.js";
import type { NodeSnapshot } from "./node-state.js";
import { eventProto } from "./proto.js";
import { SampleEncoder } from "./sample-encoder.js";

type WatchCall = ServerWritableStream<WatchNodeRequest, WatchNodeResponse>;

export interface WatchHubOptions {
  readonly log: EventLog;
  /** The node and leases as a new watcher's first message shows them. */
  readonly current: () => { snapshot: NodeSnapshot; node: Node; leases: LeaseProto[] } | undefined;
  /** The agent's configured sampling interval. */
  readonly defaultIntervalMs: number;
  /** Asks the sampler to sweep at this interval (the fastest any watcher wants, never slower than configured). */
  readonly setSamplingInterval: (ms: number) => void;
  /** Samples a slow watcher may have waiting; older ones are dropped (and counted as missed). */
  readonly maxQueuedSamples: number;
  readonly maxWatchers: number;
  /** The snapshot as a NodeSample (cached per snapshot by the caller). */
  readonly sample: (snapshot: NodeSnapshot) => NodeSample;
}

interface Watcher {
  readonly id: number;
  readonly call: WatchCall;
  readonly intervalMs: number;
  readonly eventsOnly: boolean;
  /** Last event sequence number written (or skipped as a gap). */
  cursor: number;
  queue: NodeSnapshot[];
  missed: number;
  missedTotal: number;
  delivered: number;
  lastSampleAtMs: number;
  blocked: boolean;
  closed: boolean;
}

export interface WatchStats {
  readonly watchers: number;
  readonly samplesDelivered: number;
  readonly samplesMissed: number;
  readonly eventsDelivered: number;
}

export class TooManyWatchersError extends Error {}

export class WatchHub {
  readonly #o: WatchHubOptions;
  readonly #watchers = new Map<number, Watcher>();
  readonly #eventBytes = new WeakMap<AgentEvent, Encoded>();
  readonly #sampleBytes = new WeakMap<NodeSnapshot, Encoded>();
  readonly #missedBytes = new Map<number, Buffer>();
  readonly #encoder = new SampleEncoder();
  #nextId = 1;
  #samplesDelivered = 0;
  #samplesMissed = 0;
  #eventsDelivered = 0;
  #lastSweep = -1;
  #lastStale = false;
  #samplingMs: number;

  constructor(options: WatchHubOptions) {
    this.#o = options;
    this.#samplingMs = options.defaultIntervalMs;
    options.log.subscribe(() => {
      for (const w of this.#watchers.values()) this.#pump(w);
    });
  }

  get stats(): WatchStats {
    return {
      watchers: this.#watchers.size,
      samplesDelivered: this.#samplesDelivered,
      samplesMissed: this.#samplesMissed,
      eventsDelivered: this.#eventsDelivered,
    };
  }

  /** The interval the sampler should sweep at for the current watchers. */
  get samplingIntervalMs(): number {
    return this.#samplingMs;
  }

  /** Starts a watch; the stream stays open until the client cancels or the hub closes. */
  add(call: WatchCall): void {
    if (this.#watchers.size >= this.#o.maxWatchers)
      throw new TooManyWatchersError(`at most ${this.#o.maxWatchers} watchers`);
    const req = call.request;
    const current = this.#o.current();
    const log = this.#o.log;
    const lastSeq = log.lastSeq;
    const w: Watcher = {
      id: this.#nextId++,
      call,
      intervalMs: req.intervalMs === 0 ? this.#o.defaultIntervalMs : req.intervalMs,
      eventsOnly: req.eventsOnly,
      cursor: req.resumeAfterSeq > 0n ? Number(req.resumeAfterSeq) : lastSeq,
      queue: [],
      missed: 0,
      missedTotal: 0,
      delivered: 0,
      lastSampleAtMs: current?.snapshot.sweep.startedAtMs ?? 0,
      blocked: false,
      closed: false,
    };
    this.#watchers.set(w.id, w);
    const remove = () => this.#remove(w);
    call.on("cancelled", remove);
    call.on("close", remove);
    call.on("error", remove);
    call.on("drain", () => {
      w.blocked = false;
      this.#pump(w);
    });
    if (current) {
      const first = create(WatchNodeResponseSchema, {
        item: {
          case: "snapshot",
          value: {
            node: current.node,
            leases: current.leases,
            lastSeq: BigInt(lastSeq),
            sample: this.#o.sample(current.snapshot),
          },
        },
      });
      if (!call.write(first)) w.blocked = true;
    }
    this.#retune();
    this.#pump(w);
  }

  /** A new snapshot: queue it for every watcher it is due for. */
  publish(snapshot: NodeSnapshot): void {
    const sweep = snapshot.sweep.sweep;
    if (sweep === this.#lastSweep && snapshot.stale === this.#lastStale) return;
    this.#lastSweep = sweep;
    this.#lastStale = snapshot.stale;
    const at = snapshot.sweep.startedAtMs;
    for (const w of this.#watchers.values()) {
      if (w.eventsOnly) continue;
      // Half a sweep of slack: a sweep that starts a little early (jitter) still counts for this interval.
      const slack = Math.min(w.intervalMs, this.#samplingMs) / 2;
      if (!snapshot.stale && at - w.lastSampleAtMs < w.intervalMs - slack) continue;
      w.lastSampleAtMs = at;
      w.queue.push(snapshot);
      if (w.queue.length > this.#o.maxQueuedSamples) {
        w.queue.shift();
        w.missed++;
        w.missedTotal++;
        this.#samplesMissed++;
      }
      this.#pump(w);
    }
  }

  /** Ends every stream cleanly (agent shutdown). */
  closeAll(): void {
    for (const w of [...this.#watchers.values()]) {
      w.closed = true;
      this.#watchers.delete(w.id);
      w.call.end();
    }
    this.#retune();
  }

  #remove(w: Watcher): void {
    if (w.closed) return;
    w.closed = true;
    this.#watchers.delete(w.id);
    this.#retune();
  }

  #retune(): void {
    let fastest = this.#o.defaultIntervalMs;
    for (const w of this.#watchers.values()) if (!w.eventsOnly) fastest = Math.min(fastest, w.intervalMs);
    if (fastest !== this.#samplingMs) {
      this.#samplingMs = fastest;
      this.#o.setSamplingInterval(fastest);
    }
  }

  #pump(w: Watcher): void {
    const log = this.#o.log;
    while (!w.blocked && !w.closed) {
      let ok: boolean;
      if (w.cursor < log.lastSeq) {
        const { events, gap } = log.after(w.cursor, 1);
        if (gap) {
          ok = w.call.write(
            create(WatchNodeResponseSchema, {
              item: { case: "gap", value: { fromSeq: BigInt(gap.from), toSeq: BigInt(gap.to) } },
            }),
          );
          w.cursor = gap.to;
        } else {
          const e = events[0];
          if (!e) break;
          ok = w.call.write(this.#encodedEvent(e) as unknown as WatchNodeResponse);
          w.cursor = e.seq;
          this.#eventsDelivered++;
        }
      } else if (w.queue.length > 0) {
        const snapshot = w.queue.shift() as NodeSnapshot;
        ok = w.call.write(this.#encodedSample(snapshot, w.missed) as unknown as WatchNodeResponse);
        w.missed = 0;
        w.delivered++;
        this.#samplesDelivered++;
      } else break;
      if (!ok) w.blocked = true;
    }
  }

  #encodedEvent(e: AgentEvent): Encoded {
    let enc = this.#eventBytes.get(e);
    if (!enc) {
      enc = new Encoded(
        encodeMessage(
          WatchNodeResponseSchema,
          create(WatchNodeResponseSchema, { item: { case: "event", value: eventProto(e) } }),
        ),
      );
      this.#eventBytes.set(e, enc);
    }
    return enc;
  }

  #encodedSample(s: NodeSnapshot, missed: number): Encoded {
    let enc = this.#sampleBytes.get(s);
    if (!enc) {
      enc = new Encoded(this.#encoder.response(s));
      this.#sampleBytes.set(s, enc);
    }
    if (missed === 0) return enc;
    // A second encoding of the same oneof member merges into the first: the shared bytes plus this
    // watcher's count.
    let tail = this.#missedBytes.get(missed);
    if (!tail) {
      tail = encodeMessage(
        WatchNodeResponseSchema,
        create(WatchNodeResponseSchema, { item: { case: "sample", value: { missedSamples: BigInt(missed) } } }),
      );
      if (this.#missedBytes.size < 1024) this.#missedBytes.set(missed, tail);
    }
    return new Encoded(Buffer.concat([enc.bytes, tail]));
  }
}
