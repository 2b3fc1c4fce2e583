import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { create } from "@bufbuild/protobuf";
import { AllocateRequestSchema, GetNodeRequestSchema } from "../../src/gen/tessera/v1/agent_pb.js";
import { call } from "../../src/rpc/client.js";
import { createSimWorld, type SimWorld } from "../nvml/sim-world.js";
import { type AgentProcess, eventually, metricValue, removeDir, scrape, startAgent } from "./harness.js";

let world: SimWorld;
let agent: AgentProcess;

before(async () => {
  world = createSimWorld("dgx-h100");
  const config = join(world.dir, "agent.yaml");
  writeFileSync(config, "sampling:\n  intervalMs: 200\n  timeoutMs: 800\n");
  agent = await startAgent({ args: ["--config", config] });
});

after(async () => {
  world?.sim.setLatency("nvmlDeviceGetPowerUsage", 0);
  await agent?.stop();
  if (agent) removeDir(agent.dir);
  world?.dispose();
});

describe("a hung NVML call", () => {
  it("stalls only the sampler: reads stay fast and say the data is stale, then it recovers", async () => {
    const client = agent.client();
    const before = await call(client, "getNode", create(GetNodeRequestSchema, {}));
    const gpu3 = before.node?.gpus[3]?.uuid as string;
    // Each power reading now takes 3 s: the sampler's sweep hangs inside NVML.
    world.sim.setLatency("nvmlDeviceGetPowerUsage", 3_000_000);
    try {
      const stale = await eventually(async () => {
        const t0 = Date.now();
        const res = await call(client, "getNode", create(GetNodeRequestSchema, {}), 2000);
        assert.ok(Date.now() - t0 < 500, `GetNode took ${Date.now() - t0} ms`);
        return res.sample?.stale ? res : undefined;
      }, 5000);
      assert.equal(stale.node?.gpus.length, 8, "the last snapshot is still served");
      const text = await scrape(agent.metrics as string);
      assert.equal(metricValue(text, "tessera_agent_sampler_stale"), 1);
      assert.ok((metricValue(text, "tessera_agent_sweep_timeouts_total") ?? 0) >= 1, "the timeout is counted");
      assert.ok(
        (metricValue(text, "DCGM_FI_DEV_GPU_TEMP", { gpu: "0" }) ?? 0) > 0,
        "metrics still come from the snapshot",
      );
      assert.equal((await fetch(`http://${agent.metrics}/health`)).status, 503);
      await agent.waitForLog((l) => typeof l.msg === "string" && l.msg.startsWith("sampler missed its deadline"));
      // Lease changes go through the control thread, which this hang does not touch.
      const lease = await call(
        client,
        "allocate",
        create(AllocateRequestSchema, {
          workloadId: "during-hang",
          tenant: "t",
          target: { case: "deviceUuid", value: gpu3 },
        }),
        2000,
      );
      assert.equal(lease.cudaVisibleDevices, gpu3);
    } finally {
      world.sim.setLatency("nvmlDeviceGetPowerUsage", 0);
    }
    const recovered = await agent.waitForLog((l) => l.msg === "sampler recovered", 15_000);
    assert.equal((recovered.slowest as { operation: string }).operation, "nvmlDeviceGetPowerUsage");
    await eventually(async () => {
      const res = await call(client, "getNode", create(GetNodeRequestSchema, {}));
      return res.sample?.stale === false ? true : undefined;
    });
    assert.equal((await fetch(`http://${agent.metrics}/health`)).status, 200);
  });
});
