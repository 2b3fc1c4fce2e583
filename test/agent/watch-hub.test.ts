import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { describe, it } from "node:test";
import { create, fromBinary } from "@bufbuild/protobuf";
import type { NodeSnapshot } from "../../src/agent/node-state.js";
import { sampleProto } from "../../src/agent/proto.js";
import { WatchHub } from "../../src/agent/watch-hub.js";
import {
  type WatchNodeRequest,
  WatchNodeRequestSchema,
  type WatchNodeResponse,
  WatchNodeResponseSchema,
} from "../../src/gen/tessera/v1/agent_pb.js";
import { NodeSchema } from "../../src/gen/tessera/v1/node_pb.js";
import { Encoded, encodeMessage } from "../../src/rpc/grpc-adapter.js";
import { EventLog } from "../../src/telemetry/event-log.js";
import type { SweepResult } from "../../src/telemetry/sweep-types.js";

/** A stream that accepts `capacity` writes before it pushes back, like grpc-js under backpressure. */
class FakeCall extends EventEmitter {
  readonly written: WatchNodeResponse[] = [];
  ended = false;
  capacity: number;
  constructor(
    readonly request: WatchNodeRequest,
    capacity = Number.POSITIVE_INFINITY,
  ) {
    super();
    this.capacity = capacity;
  }
  write(message: WatchNodeResponse | Encoded): boolean {
    const bytes = message instanceof Encoded ? message.bytes : encodeMessage(WatchNodeResponseSchema, message);
    this.written.push(fromBinary(WatchNodeResponseSchema, bytes));
    this.capacity--;
    return this.capacity > 0;
  }
  end(): void {
    this.ended = true;
  }
  drain(capacity: number): void {
    this.capacity = capacity;
    this.emit("drain");
  }
}

function snapshot(sweep: number, atMs: number): NodeSnapshot {
  const result: SweepResult = {
    sweep,
    scheduledAtMs: atMs,
    startedAtMs: atMs,
    durationMs: 1,
    driver: {
      driverVersion: "x",
      nvmlVersion: "x",
      cudaDriverVersion: "",
      libraryPath: "",
      simulated: true,
      simulatorPreset: "",
    },
    gpus: [],
    unavailable: [],
    nvmlErrors: [],
    slowestCall: undefined,
    fabric: undefined,
  };
  return { version: sweep, sweep: result, fabric: undefined, health: new Map(), stale: false, atMs, lastSeq: 0 };
}

function hub(log: EventLog, intervals: number[] = []) {
  let current: NodeSnapshot = snapshot(0, 0);
  const h = new WatchHub({
    log,
    current: () => ({ snapshot: current, node: create(NodeSchema, { nodeId: "n" }), leases: [] }),
    defaultIntervalMs: 1000,
    setSamplingInterval: (ms) => intervals.push(ms),
    maxQueuedSamples: 1,
    maxWatchers: 3,
    sample: sampleProto,
  });
  return {
    hub: h,
    publish: (s: NodeSnapshot) => {
      current = s;
      h.publish(s);
    },
  };
}

const ev = (n: number) => ({
  kind: "mig" as const,
  atMs: n,
  gpuIndex: 0,
  gpuUuid: "GPU-x",
  message: `e${n}`,
  detail: { type: "mig" as const, change: "" },
});

const kinds = (c: FakeCall) => c.written.map((m) => m.item.case);

describe("WatchHub", () => {
  it("starts every watcher with a snapshot, and speeds the sampler up for the fastest one", () => {
    const intervals: number[] = [];
    const { hub: h } = hub(new EventLog(100, 1), intervals);
    const call = new FakeCall(create(WatchNodeRequestSchema, { intervalMs: 200 }));
    h.add(call as never);
    assert.deepEqual(kinds(call), ["snapshot"]);
    assert.deepEqual(intervals, [200]);
    call.emit("cancelled");
    assert.deepEqual(intervals, [200, 1000], "back to the configured interval when it leaves");
  });

  it("delivers samples at each watcher's interval", () => {
    const { hub: h, publish } = hub(new EventLog(100, 1));
    const fast = new FakeCall(create(WatchNodeRequestSchema, { intervalMs: 200 }));
    const slow = new FakeCall(create(WatchNodeRequestSchema, { intervalMs: 1000 }));
    h.add(fast as never);
    h.add(slow as never);
    for (let i = 1; i <= 10; i++) publish(snapshot(i, i * 200));
    assert.equal(fast.written.filter((m) => m.item.case === "sample").length, 10);
    assert.equal(slow.written.filter((m) => m.item.case === "sample").length, 2);
  });

  it("lets a blocked watcher miss samples, tells it how many, and keeps every event for it", () => {
    const log = new EventLog(100, 1);
    const { hub: h, publish } = hub(log);
    const ok = new FakeCall(create(WatchNodeRequestSchema, { intervalMs: 100 }));
    const blocked = new FakeCall(create(WatchNodeRequestSchema, { intervalMs: 100 }), 1);
    h.add(ok as never);
    h.add(blocked as never);
    for (let i = 1; i <= 6; i++) {
      publish(snapshot(i, i * 100));
      log.append(ev(i));
    }
    assert.deepEqual(kinds(blocked), ["snapshot"], "nothing written while it pushes back");
    assert.equal(ok.written.filter((m) => m.item.case === "sample").length, 6);
    assert.equal(ok.written.filter((m) => m.item.case === "event").length, 6);
    blocked.drain(100);
    const events = blocked.written
      .filter((m) => m.item.case === "event")
      .map((m) => (m.item.case === "event" ? m.item.value.seq : 0n));
    assert.deepEqual(events, [1n, 2n, 3n, 4n, 5n, 6n]);
    const samples = blocked.written.flatMap((m) => (m.item.case === "sample" ? [m.item.value] : []));
    assert.equal(samples.length, 1, "only the latest sample waited");
    assert.equal(samples[0]?.missedSamples, 5n);
    assert.equal(samples[0]?.sweep, 6n);
    assert.deepEqual(h.stats.samplesMissed, 5);
  });

  it("sends a gap when a watcher resumes from events the log no longer holds", () => {
    const log = new EventLog(2, 1);
    for (let i = 1; i <= 5; i++) log.append(ev(i));
    const { hub: h } = hub(log);
    const call = new FakeCall(create(WatchNodeRequestSchema, { eventsOnly: true, resumeAfterSeq: 1n }));
    h.add(call as never);
    assert.deepEqual(kinds(call), ["snapshot", "gap", "event", "event"]);
    const gap = call.written[1]?.item;
    assert.deepEqual(gap?.case === "gap" ? [gap.value.fromSeq, gap.value.toSeq] : [], [2n, 3n]);
  });

  it("limits the number of watchers and ends every stream on close", () => {
    const { hub: h } = hub(new EventLog(10, 1));
    const calls = [1, 2, 3].map(() => new FakeCall(create(WatchNodeRequestSchema, {})));
    for (const c of calls) h.add(c as never);
    assert.throws(() => h.add(new FakeCall(create(WatchNodeRequestSchema, {})) as never), /at most 3 watchers/);
    h.closeAll();
    assert.ok(
      calls.every((c) => c.ended),
      "all ended",
    );
    assert.equal(h.stats.watchers, 0);
  });
});
