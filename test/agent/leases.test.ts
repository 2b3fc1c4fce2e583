import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { create } from "@bufbuild/protobuf";
import { type ServiceError, status } from "@grpc/grpc-js";
import {
  AllocateRequestSchema,
  type AllocateResponse,
  GetNodeRequestSchema,
  ListLeasesRequestSchema,
  ReleaseRequestSchema,
} from "../../src/gen/tessera/v1/agent_pb.js";
import type { Node } from "../../src/gen/tessera/v1/node_pb.js";
import { type Nvml, openNvml } from "../../src/nvml/index.js";
import { call, type NodeAgentClient } from "../../src/rpc/client.js";
import { createSimWorld, type SimWorld } from "../nvml/sim-world.js";
import { type AgentProcess, eventually, metricValue, removeDir, scrape, startAgent } from "./harness.js";

let world: SimWorld;
let agent: AgentProcess;
let client: NodeAgentClient;
let nvml: Nvml;

before(async () => {
  world = createSimWorld("dgx-h100");
  nvml = await openNvml();
  // GPU 1: four 1g.10gb devices; GPU 0: MIG on, empty (for dynamic allocations); GPU 7 stays whole.
  const g1 = nvml.device(1);
  g1.mig.setMode(true);
  for (let s = 0; s < 4; s++) g1.mig.createGpuInstance(19, { start: s, size: 1 }).createComputeInstance(0);
  nvml.device(0).mig.setMode(true);
  agent = await startAgent({ args: ["--dynamic-mig", "--sampling-interval", "200"] });
  client = agent.client();
});

after(async () => {
  await agent?.stop();
  if (agent) removeDir(agent.dir);
  nvml?.shutdown();
  world?.dispose();
});

async function node(): Promise<Node> {
  const res = await call(client, "getNode", create(GetNodeRequestSchema, {}));
  assert.ok(res.node, "GetNode has a node");
  return res.node;
}

function allocate(init: Parameters<typeof create<typeof AllocateRequestSchema>>[1]): Promise<AllocateResponse> {
  return call(client, "allocate", create(AllocateRequestSchema, init));
}

async function rejection(p: Promise<unknown>): Promise<ServiceError> {
  try {
    await p;
  } catch (err) {
    return err as ServiceError;
  }
  assert.fail("expected the call to fail");
}

describe("leases", () => {
  it("grants an existing MIG device, idempotently by workload id", async () => {
    const mig = (await node()).gpus[1]?.instances[0]?.computeInstances[0]?.uuid as string;
    assert.match(mig, /^MIG-/);
    const first = await allocate({ workloadId: "job-a", tenant: "team-1", target: { case: "deviceUuid", value: mig } });
    assert.equal(first.created, true);
    assert.equal(first.cudaVisibleDevices, mig);
    assert.equal(first.lease?.migUuid, mig);
    assert.equal(first.lease?.gpuIndex, 1);
    assert.equal(first.lease?.profileName, "1g.10gb");
    const again = await allocate({ workloadId: "job-a", tenant: "team-1", target: { case: "deviceUuid", value: mig } });
    assert.equal(again.created, false);
    assert.deepEqual(again.lease, first.lease);

    const busy = await rejection(
      allocate({ workloadId: "job-b", tenant: "team-2", target: { case: "deviceUuid", value: mig } }),
    );
    assert.equal(busy.code, status.FAILED_PRECONDITION);
    assert.match(busy.details, /leased by workload job-a/);
    const other = (await node()).gpus[1]?.instances[1]?.computeInstances[0]?.uuid as string;
    const holds = await rejection(
      allocate({ workloadId: "job-a", tenant: "team-1", target: { case: "deviceUuid", value: other } }),
    );
    assert.equal(holds.code, status.ALREADY_EXISTS);

    const listed = await call(client, "listLeases", create(ListLeasesRequestSchema, {}));
    assert.deepEqual(
      listed.leases.map((l) => l.workloadId),
      ["job-a"],
    );
    const metrics = await scrape(agent.metrics as string);
    assert.equal(metricValue(metrics, "tessera_leases"), 1);
    assert.equal(metricValue(metrics, "tessera_lease_info", { workload_id: "job-a", tenant: "team-1" }), 1);

    const released = await call(client, "release", create(ReleaseRequestSchema, { workloadId: "job-a" }));
    assert.equal(released.released, true);
    assert.equal(released.instanceDestroyed, false, "an existing device stays");
    const twice = await call(client, "release", create(ReleaseRequestSchema, { workloadId: "job-a" }));
    assert.equal(twice.released, false);
  });

  it("grants a whole GPU only with MIG off", async () => {
    const n = await node();
    const whole = await allocate({
      workloadId: "whole-7",
      tenant: "t",
      target: { case: "deviceUuid", value: n.gpus[7]?.uuid as string },
    });
    assert.equal(whole.cudaVisibleDevices, n.gpus[7]?.uuid);
    assert.equal(whole.lease?.migUuid, "");
    const migOn = await rejection(
      allocate({
        workloadId: "whole-1",
        tenant: "t",
        target: { case: "deviceUuid", value: n.gpus[1]?.uuid as string },
      }),
    );
    assert.equal(migOn.code, status.FAILED_PRECONDITION);
    assert.match(migOn.details, /MIG enabled/);
    const unknown = await rejection(
      allocate({
        workloadId: "ghost",
        tenant: "t",
        target: { case: "deviceUuid", value: "GPU-00000000-0000-0000-0000-000000000000" },
      }),
    );
    assert.equal(unknown.code, status.NOT_FOUND);
    await call(client, "release", create(ReleaseRequestSchema, { workloadId: "whole-7" }));
  });

  it("creates a GPU instance for a dynamic allocation and destroys it on release", async () => {
    const gpu0 = (await node()).gpus[0]?.uuid as string;
    const res = await allocate({
      workloadId: "dyn-1",
      tenant: "t",
      target: { case: "newInstance", value: { gpuUuid: gpu0, profile: "3g.40gb" } },
    });
    assert.equal(res.created, true);
    assert.equal(res.lease?.instanceCreated, true);
    assert.match(res.cudaVisibleDevices, /^MIG-/);
    assert.ok(res.lease?.placement?.start === 0 || res.lease?.placement?.start === 4, "a legal 3g.40gb placement");
    const again = await allocate({
      workloadId: "dyn-1",
      tenant: "t",
      target: { case: "newInstance", value: { gpuUuid: gpu0, profile: "3g.40gb" } },
    });
    assert.equal(again.created, false);
    assert.equal(again.cudaVisibleDevices, res.cudaVisibleDevices);
    await eventually(async () =>
      (await node()).gpus[0]?.instances.some((i) => i.computeInstances.some((c) => c.uuid === res.cudaVisibleDevices))
        ? true
        : undefined,
    );
    const released = await call(client, "release", create(ReleaseRequestSchema, { workloadId: "dyn-1" }));
    assert.deepEqual([released.released, released.instanceDestroyed], [true, true]);
    await eventually(async () => ((await node()).gpus[0]?.instances.length === 0 ? true : undefined));
  });

  it("places at the requested start, and says when there is no room or the start is not legal", async () => {
    const gpu0 = (await node()).gpus[0]?.uuid as string;
    const at4 = await allocate({
      workloadId: "dyn-4",
      tenant: "t",
      target: { case: "newInstance", value: { gpuUuid: gpu0, profile: "3g.40gb", placementStart: 4 } },
    });
    assert.equal(at4.lease?.placement?.start, 4);
    const taken = await rejection(
      allocate({
        workloadId: "dyn-4b",
        tenant: "t",
        target: { case: "newInstance", value: { gpuUuid: gpu0, profile: "7g.80gb", placementStart: 0 } },
      }),
    );
    assert.equal(taken.code, status.RESOURCE_EXHAUSTED, taken.details);
    const illegal = await rejection(
      allocate({
        workloadId: "dyn-4c",
        tenant: "t",
        target: { case: "newInstance", value: { gpuUuid: gpu0, profile: "3g.40gb", placementStart: 3 } },
      }),
    );
    assert.equal(illegal.code, status.INVALID_ARGUMENT);
    assert.match(illegal.details, /new_instance\.placement_start/);
    const notAProfile = await rejection(
      allocate({
        workloadId: "dyn-4d",
        tenant: "t",
        target: { case: "newInstance", value: { gpuUuid: gpu0, profile: "5g.50gb" } },
      }),
    );
    assert.equal(notAProfile.code, status.INVALID_ARGUMENT);
    assert.match(notAProfile.details, /new_instance\.profile/);
    await call(client, "release", create(ReleaseRequestSchema, { workloadId: "dyn-4" }));
  });

  it("refuses to release an instance that still runs processes, and keeps the lease", async () => {
    const gpu0 = (await node()).gpus[0]?.uuid as string;
    const res = await allocate({
      workloadId: "busy-1",
      tenant: "t",
      target: { case: "newInstance", value: { gpuUuid: gpu0, profile: "1g.10gb" } },
    });
    const lease = res.lease;
    assert.ok(lease, "a lease");
    const pid = world.sim.startProcess({
      gpu: 0,
      gpuInstanceId: lease.gpuInstanceId as number,
      computeInstanceId: lease.computeInstanceId as number,
      memoryMiB: 100,
      smPercent: 10,
      name: "still-running",
    });
    const busy = await rejection(call(client, "release", create(ReleaseRequestSchema, { workloadId: "busy-1" })));
    assert.equal(busy.code, status.FAILED_PRECONDITION);
    const listed = await call(client, "listLeases", create(ListLeasesRequestSchema, {}));
    assert.ok(
      listed.leases.some((l) => l.workloadId === "busy-1"),
      "the lease stays",
    );
    world.sim.stopProcess(pid);
    const released = await call(client, "release", create(ReleaseRequestSchema, { workloadId: "busy-1" }));
    assert.equal(released.instanceDestroyed, true);
  });

  it("reports a lease lost when its device vanishes", async () => {
    const n = await node();
    const gi = n.gpus[1]?.instances[3];
    const mig = gi?.computeInstances[0]?.uuid as string;
    await allocate({ workloadId: "doomed", tenant: "t", target: { case: "deviceUuid", value: mig } });
    // Someone destroys it behind the agent's back.
    const instance = nvml.device(1).mig.gpuInstanceById(gi?.gpuInstanceId as number);
    for (const ci of instance?.computeInstances() ?? []) ci.destroy();
    instance?.destroy();
    await eventually(async () => {
      const listed = await call(client, "listLeases", create(ListLeasesRequestSchema, {}));
      return listed.leases.some((l) => l.workloadId === "doomed") ? undefined : true;
    });
    const line = await agent.waitForLog((l) => typeof l.msg === "string" && l.msg.includes("lease of workload doomed"));
    assert.match(String(line.msg), /lost/);
  });
});
