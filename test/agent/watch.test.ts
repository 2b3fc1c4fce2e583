import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { create } from "@bufbuild/protobuf";
import { type ClientReadableStream, credentials, type ServiceError } from "@grpc/grpc-js";
import { WatchNodeRequestSchema, type WatchNodeResponse } from "../../src/gen/tessera/v1/agent_pb.js";
import { EventKind } from "../../src/gen/tessera/v1/telemetry_pb.js";
import { createAgentClient, type NodeAgentClient } from "../../src/rpc/client.js";
import { createSimWorld, type SimWorld } from "../nvml/sim-world.js";
import { type AgentProcess, eventually, removeDir, sleep, startAgent } from "./harness.js";

let world: SimWorld;
let agent: AgentProcess;

before(async () => {
  world = createSimWorld("dgx-h100");
  agent = await startAgent({ args: ["--sampling-interval", "1000"] });
});

after(async () => {
  await agent?.stop();
  if (agent) removeDir(agent.dir);
  world?.dispose();
});

interface Watch {
  readonly stream: ClientReadableStream<WatchNodeResponse>;
  readonly messages: WatchNodeResponse[];
  readonly ended: Promise<void>;
}

function watch(
  client: NodeAgentClient,
  init: { intervalMs?: number; resumeAfterSeq?: bigint; eventsOnly?: boolean },
): Watch {
  const stream = client.watchNode(create(WatchNodeRequestSchema, init));
  const messages: WatchNodeResponse[] = [];
  stream.on("data", (m: WatchNodeResponse) => messages.push(m));
  const ended = new Promise<void>((resolve) => {
    stream.on("error", () => resolve());
    stream.on("end", () => resolve());
  });
  return { stream, messages, ended };
}

const events = (w: Watch) => w.messages.flatMap((m) => (m.item.case === "event" ? [m.item.value] : []));
const samples = (w: Watch) => w.messages.flatMap((m) => (m.item.case === "sample" ? [m.item.value] : []));

describe("WatchNode", () => {
  it("sends a full snapshot first, then samples at the interval and events in order", async () => {
    const w = watch(agent.client(), { intervalMs: 200 });
    try {
      const first = await eventually(() => w.messages[0]);
      assert.equal(first.item.case, "snapshot");
      const snap = first.item.case === "snapshot" ? first.item.value : undefined;
      assert.equal(snap?.node?.gpus.length, 8);
      assert.ok((snap?.lastSeq ?? 0n) > 0n, "the snapshot names the last event it includes");
      assert.ok(snap?.sample, "the snapshot carries the latest sample");
      await eventually(() => (samples(w).length >= 3 ? true : undefined), 5000);
      world.sim.injectXid(2, 48);
      const health = await eventually(
        () => events(w).find((e) => e.kind === EventKind.HEALTH && e.gpuIndex === 2),
        5000,
      );
      const xid = events(w).find((e) => e.kind === EventKind.XID);
      assert.ok(xid, "the XID event arrived");
      assert.equal(xid.detail.case, "xid");
      assert.equal(xid.detail.case === "xid" ? xid.detail.value.code : 0n, 48n);
      assert.equal(xid.detail.case === "xid" ? xid.detail.value.action : "", "WORKFLOW_XID_48");
      assert.ok(xid.seq > (snap?.lastSeq ?? 0n), "events after the snapshot only");
      assert.ok(health.seq > xid.seq, "the health transition follows the XID that caused it");
      assert.equal(health.detail.case === "health" ? health.detail.value.current : "", "unhealthy");
      // Sequence numbers only grow, by one.
      const seqs = events(w).map((e) => e.seq);
      for (let i = 1; i < seqs.length; i++) assert.equal(seqs[i], (seqs[i - 1] as bigint) + 1n);
      // Samples came about every 200 ms (the sampler was sped up for this watcher).
      const times = samples(w).map((s) => Number(s.time?.seconds ?? 0n) * 1000 + (s.time?.nanos ?? 0) / 1e6);
      const gaps = times.slice(1).map((t, i) => t - (times[i] as number));
      assert.ok(
        gaps.every((g) => g >= 150 && g < 700),
        `sample gaps ${gaps.join(", ")}`,
      );
    } finally {
      w.stream.cancel();
    }
  });

  it("replays held events when resuming, and reports a gap for events no longer held", async () => {
    const live = watch(agent.client(), { eventsOnly: true });
    await eventually(() => live.messages[0]);
    world.sim.injectXid(5, 13);
    const x = await eventually(() => events(live).find((e) => e.kind === EventKind.XID && e.gpuIndex === 5), 5000);
    live.stream.cancel();

    const resumed = watch(agent.client(), { eventsOnly: true, resumeAfterSeq: x.seq - 1n });
    try {
      const replayed = await eventually(() => events(resumed)[0], 5000);
      assert.equal(resumed.messages[0]?.item.case, "snapshot");
      assert.equal(replayed.seq, x.seq);
      assert.equal(replayed.message, x.message);
      await sleep(300);
      assert.equal(samples(resumed).length, 0, "events_only watchers get no samples");
    } finally {
      resumed.stream.cancel();
    }

    const ancient = watch(agent.client(), { eventsOnly: true, resumeAfterSeq: 1n });
    try {
      const gap = await eventually(() => ancient.messages.find((m) => m.item.case === "gap"), 5000);
      assert.equal(gap.item.case === "gap" ? gap.item.value.fromSeq : 0n, 2n);
      const firstEvent = await eventually(() => events(ancient)[0], 5000);
      assert.equal(firstEvent.seq, (gap.item.case === "gap" ? gap.item.value.toSeq : 0n) + 1n);
    } finally {
      ancient.stream.cancel();
    }
  });

  it("isolates a slow watcher: it misses samples (and is told), never events, and delays no one", async () => {
    const fast = watch(agent.client(), { intervalMs: 100 });
    // A small HTTP/2 window, so that a client that stops reading pushes back on the agent quickly.
    const slowClient = createAgentClient(`unix://${agent.socket}`, credentials.createInsecure(), {
      "grpc-node.flow_control_window": 4096,
    });
    const slow = watch(slowClient, { intervalMs: 100 });
    try {
      await eventually(() => (samples(fast).length >= 2 && samples(slow).length >= 1 ? true : undefined), 5000);
      slow.stream.pause();
      const pausedAt = samples(fast).length;
      const eventsBefore = events(slow).length;
      // Events while the slow watcher reads nothing: app XIDs change no health, so exactly 8 events.
      for (let i = 0; i < 8; i++) {
        world.sim.injectXid(6, 13);
        await sleep(100);
      }
      await sleep(4000);
      const duringPause = samples(fast).length - pausedAt;
      assert.ok(duringPause >= 30, `the fast watcher got ${duringPause} samples in ~4.8 s at 100 ms`);
      const fastXids = events(fast).filter((e) => e.kind === EventKind.XID && e.gpuIndex === 6);
      assert.equal(fastXids.length, 8);
      slow.stream.resume();
      await eventually(
        () =>
          events(slow).filter((e) => e.kind === EventKind.XID && e.gpuIndex === 6).length === 8 ? true : undefined,
        10_000,
      );
      await eventually(() => (samples(slow).some((s) => s.missedSamples > 0n) ? true : undefined), 10_000).catch(() => {
        throw new Error(
          `slow watcher: ${samples(slow).length} samples, none with missed_samples; fast got ${samples(fast).length}`,
        );
      });
      const got = samples(slow);
      const missed = got.reduce((n, s) => n + s.missedSamples, 0n);
      // Every sweep was due for it: what it received plus what it was told it missed covers them all.
      const span = (got.at(-1)?.sweep ?? 0n) - (got[0]?.sweep ?? 0n);
      const accounted = BigInt(got.length - 1) + missed - (got[0]?.missedSamples ?? 0n);
      assert.ok(missed >= 3n, `the slow watcher was told it missed ${missed} samples`);
      assert.ok(accounted >= span - 2n && accounted <= span, `received + missed = ${accounted}, sweeps = ${span}`);
      // Its events have no holes.
      const seqs = events(slow)
        .slice(eventsBefore)
        .map((e) => e.seq);
      for (let i = 1; i < seqs.length; i++) assert.equal(seqs[i], (seqs[i - 1] as bigint) + 1n, "no event lost");
    } finally {
      fast.stream.cancel();
      slow.stream.cancel();
      slowClient.close();
    }
  });

  it("rejects a sampling interval below 100 ms", async () => {
    const w = watch(agent.client(), { intervalMs: 50 });
    const err = await new Promise<ServiceError>((resolve) => w.stream.on("error", resolve));
    assert.equal(err.code, 3); // INVALID_ARGUMENT
    assert.match(err.details, /interval_ms/);
  });
});
