// Failures end to end: the scheduler SIGKILLed during churn and restarted (it rebuilds its view
// from the agents; no lease is lost or duplicated), and an agent SIGKILLed and restarted (its node
// goes unavailable, its leases are still reported, and it is reconciled when it returns).
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { type Lease, ListLeasesRequestSchema } from "../../src/gen/tessera/v1/agent_pb.js";
import {
  ExplainRequestSchema,
  PlaceRequestSchema,
  type PlaceResponse,
  ReleaseWorkloadRequestSchema,
} from "../../src/gen/tessera/v1/scheduler_pb.js";
import { call } from "../../src/rpc/client.js";
import { createSchedulerClient, type SchedulerClient, schedulerCall } from "../../src/scheduler/client.js";
import { parseSliceWorkloadId } from "../../src/scheduler/cluster.js";
import { createRng } from "../../src/scheduler/demand.js";
import { sleep } from "../agent/harness.js";
import {
  clusterReady,
  eventually,
  removeTree,
  type SchedulerProcess,
  type SimAgent,
  startSchedulerProcess,
  startSimAgent,
} from "./cluster-harness.js";

let scheduler: SchedulerProcess;
let port: number;
const agents = new Map<string, SimAgent>();
const dirs: string[] = [];

async function launchAgent(nodeId: string, preset: "dgx-h100" | "mixed", previous?: SimAgent): Promise<SimAgent> {
  const a = await startSimAgent({
    nodeId,
    host: { preset },
    dynamic: true,
    labels: { node: nodeId },
    scheduler: `127.0.0.1:${port}`,
    ...(previous ? { dir: previous.dir, port: previous.port } : {}),
  });
  agents.set(nodeId, a);
  if (!dirs.includes(a.dir)) dirs.push(a.dir);
  return a;
}

before(async () => {
  scheduler = await startSchedulerProcess({ startupGraceMs: 1500 });
  port = Number(scheduler.tcp.split(":").pop());
  await Promise.all([launchAgent("h100", "dgx-h100"), launchAgent("mixed", "mixed")]);
  await clusterReady(scheduler, ["h100", "mixed"]);
});

after(async () => {
  for (const a of agents.values()) await a.stop("SIGKILL");
  await scheduler?.stop("SIGKILL");
  for (const d of dirs) removeTree(d);
});

/** A client that reconnects quickly to a restarted scheduler at the same address. */
function quickClient(): SchedulerClient {
  return createSchedulerClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), {
    "grpc.initial_reconnect_backoff_ms": 50,
    "grpc.max_reconnect_backoff_ms": 250,
  });
}

const RETRYABLE = new Set([
  grpc.status.UNAVAILABLE,
  grpc.status.ABORTED,
  grpc.status.DEADLINE_EXCEEDED,
  grpc.status.CANCELLED,
]);

/** Retries with the same workload id until the scheduler gives a definitive answer. */
async function untilAnswered<T>(fn: () => Promise<T>, deadlineMs = 30_000): Promise<T | "refused"> {
  const until = Date.now() + deadlineMs;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      const code = (err as grpc.ServiceError).code;
      if (code === grpc.status.RESOURCE_EXHAUSTED) return "refused";
      if (!RETRYABLE.has(code) || Date.now() > until) throw err;
      await sleep(50);
    }
  }
}

async function leasesOn(a: SimAgent): Promise<Lease[]> {
  return (await call(a.agent.client(), "listLeases", create(ListLeasesRequestSchema, {}))).leases;
}

const SHAPES = [
  { memoryMib: 9000n, computeFraction: 0.1 },
  { memoryMib: 18_000n, computeFraction: 0.25 },
  { memoryMib: 35_000n, computeFraction: 0.4 },
] as const;

describe("failures, end to end", () => {
  it("rebuilds the view after a SIGKILL of the scheduler during churn: no lease lost or duplicated", async () => {
    const client = quickClient();
    const held = new Map<string, PlaceResponse>();
    let stop = false;
    let placements = 0;
    let restarts = 0;
    const worker = async (w: number) => {
      const rng = createRng(100 + w);
      for (let n = 0; !stop; n++) {
        if (held.size > 0 && rng() < 0.35) {
          const ids = [...held.keys()];
          const id = ids[Math.floor(rng() * ids.length)] as string;
          held.delete(id); // whatever the answer, the workload is gone once it is definitive
          const out = await untilAnswered(() =>
            schedulerCall(client, "releaseWorkload", create(ReleaseWorkloadRequestSchema, { workloadId: id }), 5000),
          );
          assert.notEqual(out, "refused");
          continue;
        }
        const init: MessageInitShape<typeof PlaceRequestSchema> = {
          workloadId: `churn-${w}-${n}`,
          tenant: `t${w % 2}`,
          target: { case: "shape", value: SHAPES[Math.floor(rng() * SHAPES.length)] as (typeof SHAPES)[number] },
          count: rng() < 0.2 ? 2 : 1,
        };
        const out = await untilAnswered(() => schedulerCall(client, "place", create(PlaceRequestSchema, init), 5000));
        if (out !== "refused") {
          held.set(out.workloadId, out);
          placements++;
        }
      }
    };
    const workers = [0, 1, 2].map(worker);
    try {
      await sleep(1500);
      assert.ok(placements > 0, "churn is running");
      // SIGKILL: no shutdown, calls in flight die with it.
      await scheduler.stop("SIGKILL");
      restarts++;
      await sleep(200);
      scheduler = await startSchedulerProcess({ listen: `127.0.0.1:${port}`, startupGraceMs: 1500 });
      const rebuilt = await scheduler.waitForLog((l) => l.msg === "cluster view rebuilt: placing", 15_000);
      assert.ok((rebuilt.ms as number) < 5000, `view rebuilt in ${rebuilt.ms} ms`);
      const before = placements;
      await sleep(2000);
      assert.ok(placements > before, "placements go on after the restart");
    } finally {
      stop = true;
      await Promise.all(workers);
      client.close();
    }
    assert.equal(restarts, 1);

    // The agents' own lease tables: every held workload exactly once, nothing else.
    const slices = new Map<string, { node: string; lease: Lease }>();
    for (const [node, a] of agents) {
      for (const lease of await leasesOn(a)) {
        const other = slices.get(lease.workloadId);
        assert.equal(other, undefined, `${lease.workloadId} is leased on ${other?.node} and ${node}`);
        slices.set(lease.workloadId, { node, lease });
      }
    }
    const groups = new Map<string, { node: string; devices: string[] }>();
    for (const [id, { node, lease }] of slices) {
      const { groupId } = parseSliceWorkloadId(id);
      const g = groups.get(groupId) ?? { node, devices: [] };
      assert.equal(g.node, node, `${groupId} spans nodes`);
      g.devices.push(lease.migUuid);
      groups.set(groupId, g);
    }
    for (const [id, r] of held) {
      const g = groups.get(id);
      assert.ok(g, `held workload ${id} lost`);
      assert.equal(g.node, r.nodeId);
      assert.deepEqual(g.devices.sort(), r.cudaVisibleDevices.split(",").sort());
    }
    for (const id of groups.keys()) assert.ok(held.has(id), `lease for ${id}, which the client does not hold`);

    // And the restarted scheduler sees exactly what the agents hold.
    await eventually(async () => {
      const c = await scheduler.cluster();
      const seen = c.nodes.flatMap((n) => n.leases.map((l) => l.sliceWorkloadId)).sort();
      return JSON.stringify(seen) === JSON.stringify([...slices.keys()].sort()) ? true : undefined;
    }, 10_000);
    assert.deepEqual((await scheduler.cluster()).conflicts, []);

    // Leave an empty cluster for the next test.
    const cleanup = quickClient();
    for (const id of held.keys())
      await schedulerCall(cleanup, "releaseWorkload", create(ReleaseWorkloadRequestSchema, { workloadId: id }));
    cleanup.close();
    // Released instances are held until the agents' next sweeps show them destroyed.
    await eventually(async () => {
      const c = await scheduler.cluster();
      return c.nodes.every((n) => n.leases.length === 0 && n.gpus.every((g) => g.instances.every((i) => !i.busy)))
        ? true
        : undefined;
    }, 10_000);
  });

  it("marks a SIGKILLed agent's node unavailable, keeps its leases, and reconciles it when it returns", async () => {
    const client = quickClient();
    try {
      const onMixed = { constraints: { nodeLabels: { node: "mixed" } }, tenant: "t9" };
      const kept = await schedulerCall(
        client,
        "place",
        create(PlaceRequestSchema, { workloadId: "kept", target: { case: "profile", value: "1g.10gb" }, ...onMixed }),
      );
      assert.equal(kept.nodeId, "mixed");
      const mixed = agents.get("mixed") as SimAgent;
      await mixed.agent.stop("SIGKILL");

      // At once: the watch stream broke, so the view may be stale.
      const cut = await eventually(async () => {
        const n = (await scheduler.cluster()).nodes.find((x) => x.nodeId === "mixed");
        return n && !n.available ? n : undefined;
      }, 10_000);
      assert.match(cut.unavailableReason, /no live stream from the agent|agent stopped renewing/);
      // After its registration lease: the agent stopped renewing.
      const down = await eventually(async () => {
        const n = (await scheduler.cluster()).nodes.find((x) => x.nodeId === "mixed");
        return n && /agent stopped renewing: registration lease expired/.test(n.unavailableReason) ? n : undefined;
      }, 10_000);
      assert.equal(down.available, false);
      assert.ok(
        down.leases.some((l) => l.workloadId === "kept"),
        "the unavailable node's leases are still reported",
      );
      const refused = await schedulerCall(
        client,
        "place",
        create(PlaceRequestSchema, {
          workloadId: "nowhere",
          target: { case: "profile", value: "1g.10gb" },
          ...onMixed,
        }),
      ).catch((err: grpc.ServiceError) => err);
      assert.equal((refused as grpc.ServiceError).code, grpc.status.RESOURCE_EXHAUSTED);
      assert.match((refused as grpc.ServiceError).details, /node-unavailable/);
      const e = await schedulerCall(
        client,
        "explain",
        create(ExplainRequestSchema, {
          request: { workloadId: "x", tenant: "t9", target: { case: "profile", value: "1g.10gb" } },
        }),
      );
      assert.ok(e.rejections.some((r) => r.nodeId === "mixed" && r.code === "node-unavailable"));
      assert.ok(e.decision && e.decision.nodeId !== "mixed");
      // Idempotent by workload id even now: the retry gets the lease on the unavailable node.
      const replay = await schedulerCall(
        client,
        "place",
        create(PlaceRequestSchema, { workloadId: "kept", target: { case: "profile", value: "1g.10gb" }, ...onMixed }),
      );
      assert.deepEqual([replay.created, replay.cudaVisibleDevices], [false, kept.cudaVisibleDevices]);

      const back = await launchAgent("mixed", "mixed", mixed);
      await clusterReady(scheduler, ["mixed"]);
      assert.ok(
        (await leasesOn(back)).some((l) => l.workloadId === "kept"),
        "the agent kept the lease",
      );
      const after = await schedulerCall(
        client,
        "place",
        create(PlaceRequestSchema, { workloadId: "after", target: { case: "profile", value: "1g.10gb" }, ...onMixed }),
      );
      assert.equal(after.nodeId, "mixed");
      const rel = await schedulerCall(
        client,
        "releaseWorkload",
        create(ReleaseWorkloadRequestSchema, { workloadId: "kept" }),
      );
      assert.equal(rel.released, true);
      assert.ok(!(await leasesOn(back)).some((l) => l.workloadId === "kept"));
    } finally {
      client.close();
    }
  });
});
