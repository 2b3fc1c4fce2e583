import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { create } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import {
  AllocateRequestSchema,
  ApplyMigLayoutRequestSchema,
  ApplyOutcome,
  GetNodeRequestSchema,
  PlanMigLayoutRequestSchema,
  ReleaseRequestSchema,
  WatchNodeRequestSchema,
  type WatchNodeResponse,
} from "../../src/gen/tessera/v1/agent_pb.js";
import type { Gpu } from "../../src/gen/tessera/v1/node_pb.js";
import { EventKind } from "../../src/gen/tessera/v1/telemetry_pb.js";
import { call, type NodeAgentClient } from "../../src/rpc/client.js";
import { createSimWorld, type SimWorld } from "../nvml/sim-world.js";
import { type AgentProcess, eventually, removeDir, startAgent } from "./harness.js";

let world: SimWorld;
let agent: AgentProcess;
let client: NodeAgentClient;

before(async () => {
  world = createSimWorld("dgx-h100");
  agent = await startAgent({ args: ["--sampling-interval", "200"] });
  client = agent.client();
});

after(async () => {
  await agent?.stop();
  if (agent) removeDir(agent.dir);
  world?.dispose();
});

const SPEC = `version: v1
mig-configs:
  gpu2-split:
    - devices: [2]
      mig-enabled: true
      mig-devices:
        "3g.40gb": 1
        "1g.10gb": 4
  gpu2-whole:
    - devices: [2]
      mig-enabled: true
      mig-devices:
        "7g.80gb": 1
`;

async function gpu(index: number): Promise<Gpu> {
  const res = await call(client, "getNode", create(GetNodeRequestSchema, {}));
  const g = res.node?.gpus[index];
  assert.ok(g, `GPU ${index}`);
  return g;
}

function apply(configName: string, options: { dryRun?: boolean; force?: boolean } = {}) {
  return call(
    client,
    "applyMigLayout",
    create(ApplyMigLayoutRequestSchema, { specYaml: SPEC, specName: "layouts.yaml", configName, ...options }),
    30_000,
  );
}

describe("MIG over gRPC", () => {
  it("plans and dry-runs without changing anything", async () => {
    const plan = await call(
      client,
      "planMigLayout",
      create(PlanMigLayoutRequestSchema, { specYaml: SPEC, configName: "gpu2-split" }),
    );
    assert.equal(plan.plan?.feasible, true);
    const g2 = plan.plan?.gpus.find((g) => g.gpuIndex === 2);
    assert.ok(g2, "GPU 2 is planned");
    assert.match(plan.plan?.rendered ?? "", /GPU 2/);
    const dry = await apply("gpu2-split", { dryRun: true });
    assert.equal(dry.results.find((r) => r.gpuIndex === 2)?.outcome, ApplyOutcome.UNCHANGED);
    assert.equal((await gpu(2)).migEnabled, false);
  });

  it("applies a layout, and watchers see the MIG changes", async () => {
    const stream = client.watchNode(create(WatchNodeRequestSchema, { eventsOnly: true }));
    const got: WatchNodeResponse[] = [];
    stream.on("data", (m: WatchNodeResponse) => got.push(m));
    stream.on("error", () => undefined);
    try {
      await eventually(() => got[0]);
      const res = await apply("gpu2-split");
      assert.equal(
        res.results.find((r) => r.gpuIndex === 2)?.outcome,
        ApplyOutcome.APPLIED,
        JSON.stringify(res.results),
      );
      const g2 = await eventually(async () => {
        const g = await gpu(2);
        return g.instances.length === 5 ? g : undefined;
      });
      assert.equal(g2.migEnabled, true);
      assert.deepEqual(g2.instances.map((i) => i.profileName).sort(), [
        "1g.10gb",
        "1g.10gb",
        "1g.10gb",
        "1g.10gb",
        "3g.40gb",
      ]);
      const mig = await eventually(() => {
        const events = got.flatMap((m) =>
          m.item.case === "event" && m.item.value.kind === EventKind.MIG ? [m.item.value] : [],
        );
        return events.filter((e) => e.gpuIndex === 2 && e.message.includes("created")).length === 5
          ? events
          : undefined;
      });
      assert.ok(
        mig.some((e) => e.message.includes("MIG mode disabled → enabled")),
        "the mode change is an event",
      );
      const again = await apply("gpu2-split");
      assert.equal(again.results.find((r) => r.gpuIndex === 2)?.outcome, ApplyOutcome.UNCHANGED);
    } finally {
      stream.cancel();
    }
  });

  it("refuses to destroy busy or leased instances unless forced", async () => {
    const g2 = await gpu(2);
    const small = g2.instances.find((i) => i.profileName === "1g.10gb");
    const big = g2.instances.find((i) => i.profileName === "3g.40gb");
    assert.ok(small && big, "instances from the previous test");
    const pid = world.sim.startProcess({
      gpu: 2,
      gpuInstanceId: small.gpuInstanceId,
      computeInstanceId: small.computeInstances[0]?.computeInstanceId ?? 0,
      memoryMiB: 512,
      smPercent: 20,
      name: "busy.py",
    });
    await call(
      client,
      "allocate",
      create(AllocateRequestSchema, {
        workloadId: "holder",
        tenant: "t",
        target: { case: "deviceUuid", value: big.computeInstances[0]?.uuid as string },
      }),
    );
    let err: grpc.ServiceError | undefined;
    try {
      await apply("gpu2-whole");
    } catch (e) {
      err = e as grpc.ServiceError;
    }
    assert.equal(err?.code, grpc.status.FAILED_PRECONDITION, err?.details);
    assert.match(err?.details ?? "", new RegExp(`pids ${pid}`));
    assert.match(err?.details ?? "", /leased by holder/);
    assert.match(err?.details ?? "", /--force/);
    assert.equal((await gpu(2)).instances.length, 5, "nothing was changed");

    world.sim.stopProcess(pid);
    await call(client, "release", create(ReleaseRequestSchema, { workloadId: "holder" }));
    const res = await apply("gpu2-whole", { force: true });
    assert.equal(res.results.find((r) => r.gpuIndex === 2)?.outcome, ApplyOutcome.APPLIED);
    const after = await eventually(async () => {
      const g = await gpu(2);
      return g.instances.length === 1 ? g : undefined;
    });
    assert.equal(after.instances[0]?.profileName, "7g.80gb");
  });
});
