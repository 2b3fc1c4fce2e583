import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { create, fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import * as grpc from "@grpc/grpc-js";
import {
  GetMigLayoutRequestSchema,
  GetNodeRequestSchema,
  ListLeasesRequestSchema,
} from "../../src/gen/tessera/v1/agent_pb.js";
import { HealthState, PortHealth } from "../../src/gen/tessera/v1/node_pb.js";
import { call } from "../../src/rpc/client.js";
import { decodeHealthResponse, encodeHealthRequest, healthDefinition, ServingStatus } from "../../src/rpc/health.js";
import { decodeReflectionResponse, encodeReflectionRequest } from "../../src/rpc/reflection.js";
import { runCli } from "../cli/run-cli.js";
import { createSimWorld, type SimWorld } from "../nvml/sim-world.js";
import { type AgentProcess, eventually, metricValue, removeDir, scrape, startAgent } from "./harness.js";

let world: SimWorld;
let agent: AgentProcess;

before(async () => {
  world = createSimWorld("dgx-h100");
  // GPU 0 in MIG mode with a 3g.40gb and a 1g.10gb; a process on GPU 4.
  const { openNvml } = await import("../../src/nvml/index.js");
  const nvml = await openNvml();
  try {
    const gpu = nvml.device(0);
    gpu.mig.setMode(true);
    gpu.mig.createGpuInstance(9, { start: 0, size: 4 }).createComputeInstance(2);
    gpu.mig.createGpuInstance(19, { start: 4, size: 1 }).createComputeInstance(0);
  } finally {
    nvml.shutdown();
  }
  world.sim.startProcess({ gpu: 4, memoryMiB: 4096, smPercent: 60, name: "train.py" });
  agent = await startAgent();
});

after(async () => {
  await agent?.stop();
  if (agent) removeDir(agent.dir);
  world?.dispose();
});

describe("agent inventory", () => {
  it("serves GetNode on the unix socket and the TCP listener alike", async () => {
    const viaSocket = await call(agent.client("socket"), "getNode", create(GetNodeRequestSchema, {}));
    const viaTcp = await call(agent.client("tcp"), "getNode", create(GetNodeRequestSchema, {}));
    for (const res of [viaSocket, viaTcp]) {
      const node = res.node;
      assert.ok(node);
      assert.equal(node.simulated, true);
      assert.equal(node.simulatorPreset, "dgx-h100");
      assert.equal(node.agentVersion, "0.1.0");
      assert.equal(node.gpus.length, 8);
      assert.ok(node.driver?.driverVersion);
      assert.ok(node.host?.hostname);
      assert.ok((node.host?.cpuCores ?? 0) > 0);
    }
    const gpu0 = viaSocket.node?.gpus[0];
    assert.ok(gpu0);
    assert.equal(gpu0.name, "NVIDIA H100 80GB HBM3");
    assert.match(gpu0.uuid, /^GPU-/);
    assert.equal(gpu0.pciBusId, "00000000:1B:00.0");
    assert.equal(gpu0.health?.state, HealthState.HEALTHY);
    assert.equal(gpu0.migCapable, true);
    assert.equal(gpu0.migEnabled, true);
    assert.equal(gpu0.memorySliceCount, 8);
    const names = gpu0.profiles.map((p) => p.name);
    for (const n of ["1g.10gb", "2g.20gb", "3g.40gb", "7g.80gb"])
      assert.ok(names.includes(n), `profile ${n} in ${names}`);
    const p3g = gpu0.profiles.find((p) => p.name === "3g.40gb");
    assert.deepEqual(p3g?.placementStarts, [0, 4]);
    assert.deepEqual(
      gpu0.instances.map((i) => [i.profileName, i.placement?.start, i.placement?.size]),
      [
        ["3g.40gb", 0, 4],
        ["1g.10gb", 4, 1],
      ],
    );
    assert.match(gpu0.instances[0]?.computeInstances[0]?.uuid ?? "", /^MIG-/);
    assert.equal(gpu0.fragmentation?.freeMemorySlices, 3);
    // Slices 5–7 are free: 2g.20gb needs a start of 0, 2 or 4; 1g.20gb fits at 6.
    assert.equal(gpu0.fragmentation?.largestFittingProfile, "1g.20gb");
    // The fabric fixture: 12 healthy ports, and every GPU has a nearest NIC.
    assert.equal(viaSocket.node?.fabricPorts.length, 12);
    assert.ok(viaSocket.node?.fabricPorts.every((p) => p.health === PortHealth.HEALTHY));
    assert.equal(viaSocket.node?.topology.length, 8);
    assert.ok(viaSocket.node?.topology.every((t) => t.nearestNic !== ""));
  });

  it("includes the latest sample, with unsupported values absent rather than zero", async () => {
    const res = await call(agent.client(), "getNode", create(GetNodeRequestSchema, {}));
    const sample = res.sample;
    assert.ok(sample);
    assert.ok(sample.sweep > 0n);
    assert.equal(sample.stale, false);
    const g0 = sample.gpus.find((g) => g.index === 0);
    const g4 = sample.gpus.find((g) => g.index === 4);
    assert.ok(g0 && g4);
    // NVML does not report utilization of a MIG-enabled GPU.
    assert.equal(g0.utilizationPercent, undefined);
    assert.ok((g4.utilizationPercent ?? 0) > 0);
    assert.ok((g4.temperatureC ?? 0) > 0);
    assert.equal(g4.processes[0]?.name, "train.py");
    assert.equal(g0.migDevices.length, 2);
    assert.deepEqual(g0.migDevices.map((m) => m.profileName).sort(), ["1g.10gb", "3g.40gb"]);
  });

  it("answers GetMigLayout and ListLeases from its snapshot", async () => {
    const layout = await call(agent.client(), "getMigLayout", create(GetMigLayoutRequestSchema, {}));
    const g0 = layout.gpus.find((g) => g.gpuIndex === 0);
    assert.ok(g0?.migEnabled);
    assert.match(g0.slotMap, /^\[3g\.40gb/);
    assert.match(layout.migPartedYaml, /mig-configs:/);
    assert.match(layout.migPartedYaml, /3g\.40gb: 1/);
    const leases = await call(agent.client(), "listLeases", create(ListLeasesRequestSchema, {}));
    assert.deepEqual(leases.leases, []);
  });

  it("serves /metrics with dcgm-exporter names and labels, and /health", async () => {
    const text = await scrape(agent.metrics as string);
    const res = await call(agent.client(), "getNode", create(GetNodeRequestSchema, {}));
    const g4 = res.node?.gpus[4];
    assert.ok(g4);
    const labels = {
      gpu: "4",
      UUID: g4.uuid,
      pci_bus_id: g4.pciBusId,
      device: "nvidia4",
      modelName: "NVIDIA H100 80GB HBM3",
    };
    for (const name of [
      "DCGM_FI_DEV_GPU_TEMP",
      "DCGM_FI_DEV_POWER_USAGE",
      "DCGM_FI_DEV_GPU_UTIL",
      "DCGM_FI_DEV_FB_USED",
      "DCGM_FI_DEV_FB_FREE",
      "DCGM_FI_DEV_SM_CLOCK",
      "DCGM_FI_DEV_MEM_CLOCK",
      "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION",
      "DCGM_FI_DEV_PCIE_REPLAY_COUNTER",
      "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL",
    ])
      assert.notEqual(metricValue(text, name, labels), undefined, `${name} for GPU 4`);
    assert.match(text, /Hostname="/);
    // Memory of a MIG GPU is per GPU instance, with the instance's labels.
    assert.notEqual(
      metricValue(text, "DCGM_FI_DEV_FB_USED", { gpu: "0", GPU_I_PROFILE: "3g.40gb", GPU_I_ID: "1" }),
      undefined,
    );
    // Unsupported: no GPU_UTIL series at all for the MIG GPU.
    assert.equal(metricValue(text, "DCGM_FI_DEV_GPU_UTIL", { gpu: "0" }), undefined);
    assert.equal(metricValue(text, "tessera_mig_instances", { gpu: "0", GPU_I_PROFILE: "3g.40gb" }), 1);
    assert.equal(metricValue(text, "tessera_mig_free_memory_slices", { gpu: "0" }), 3);
    assert.equal(metricValue(text, "tessera_ib_port_up", { device: "mlx5_0", port: "1" }), 1);
    assert.equal(metricValue(text, "tessera_ib_port_rate_gbps", { device: "mlx5_0", port: "1" }), 400);
    assert.ok((metricValue(text, "tessera_agent_sweeps_total") ?? 0) >= 1, "sweeps counted");
    assert.equal(metricValue(text, "tessera_leases"), 0);
    // Every family is declared once.
    const types = text.split("\n").filter((l) => l.startsWith("# TYPE "));
    assert.equal(new Set(types).size, types.length);
    const health = await fetch(`http://${agent.metrics}/health`);
    assert.equal(health.status, 200);
  });

  it("speaks the standard health and reflection services", async () => {
    const Health = grpc.makeGenericClientConstructor(healthDefinition, "Health");
    const health = new Health(agent.tcp as string, grpc.credentials.createInsecure()) as unknown as {
      Check: (r: Buffer, cb: (e: grpc.ServiceError | null, r: Buffer) => void) => void;
      close: () => void;
    };
    const check = (service: string) =>
      new Promise<number>((resolve, reject) =>
        health.Check(encodeHealthRequest(service), (err, r) => (err ? reject(err) : resolve(decodeHealthResponse(r)))),
      );
    assert.equal(await check("tessera.v1.NodeAgentService"), ServingStatus.SERVING);
    assert.equal(await check(""), ServingStatus.SERVING);
    await assert.rejects(check("nope.Service"), (err: grpc.ServiceError) => err.code === grpc.status.NOT_FOUND);
    health.close();

    const ReflectionClient = grpc.makeGenericClientConstructor(
      {
        ServerReflectionInfo: {
          path: "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
          requestStream: true,
          responseStream: true,
          requestSerialize: (b: Buffer) => b,
          requestDeserialize: (b: Buffer) => b,
          responseSerialize: (b: Buffer) => b,
          responseDeserialize: (b: Buffer) => b,
        },
      },
      "ServerReflection",
    );
    const client = new ReflectionClient(agent.tcp as string, grpc.credentials.createInsecure()) as unknown as {
      ServerReflectionInfo: () => grpc.ClientDuplexStream<Buffer, Buffer>;
      close: () => void;
    };
    const stream = client.ServerReflectionInfo();
    const replies: ReturnType<typeof decodeReflectionResponse>[] = [];
    stream.on("data", (b: Buffer) => replies.push(decodeReflectionResponse(b)));
    stream.write(encodeReflectionRequest({ kind: "listServices" }));
    stream.write(
      encodeReflectionRequest({ kind: "fileContainingSymbol", symbol: "tessera.v1.NodeAgentService.GetNode" }),
    );
    await eventually(() => (replies.length === 2 ? true : undefined));
    stream.end();
    client.close();
    const [services, files] = replies;
    assert.ok(
      services?.kind === "services" && services.names.includes("tessera.v1.NodeAgentService"),
      JSON.stringify(services),
    );
    assert.equal(files?.kind, "fileDescriptors");
    const names =
      files?.kind === "fileDescriptors" ? files.files.map((f) => fromBinary(FileDescriptorProtoSchema, f).name) : [];
    assert.ok(
      names.includes("tessera/v1/agent.proto") && names.includes("google/protobuf/timestamp.proto"),
      names.join(", "),
    );
  });

  it("shows the agent's view with `tessera inspect --agent`", async () => {
    const r = await runCli(["inspect", "--agent", agent.tcp as string, "--insecure"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /Simulated host \(preset dgx-h100\)/);
    assert.match(r.stdout, /3g\.40gb/);
    assert.match(r.stdout, /Agent 0\.1\.0 at /);
    assert.match(r.stdout, /mlx5_0\/1/);
    const viaSocket = await runCli(["inspect", "--agent", `unix://${agent.socket}`, "-o", "json"]);
    assert.equal(viaSocket.code, 0, viaSocket.stderr);
    const json = JSON.parse(viaSocket.stdout) as { gpus: { index: number; mig?: { devices: unknown[] } }[] };
    assert.equal(json.gpus.length, 8);
    assert.equal(json.gpus[0]?.mig?.devices.length, 2);
    const noCreds = await runCli(["inspect", "--agent", agent.tcp as string]);
    assert.notEqual(noCreds.code, 0);
    assert.match(noCreds.stderr, /mTLS/);
  });
});
