import assert from "node:assert/strict";
import { after, before, beforeEach, describe, it } from "node:test";
import { type Nvml, openNvml } from "../../src/nvml/index.js";
import { MetricsRenderer, renderSnapshotMetrics } from "../../src/telemetry/metrics.js";
import { NvmlSampler } from "../../src/telemetry/sampler.js";
import type { SweepResult } from "../../src/telemetry/sweep-types.js";
import { createSimWorld, type SimWorld } from "../nvml/sim-world.js";

let world: SimWorld;
let nvml: Nvml;

before(async () => {
  world = createSimWorld("dgx-h100");
  nvml = await openNvml({ readOnly: false });
});
after(() => {
  nvml?.shutdown();
  world?.dispose();
});
beforeEach(() => world.reset("dgx-h100"));

function metrics(sweep: SweepResult, xids?: Map<string, { counts: Map<number, number>; last: number }>): string {
  return renderSnapshotMetrics({
    gpus: sweep.gpus,
    health: new Map(
      sweep.gpus.map((g) => [g.identity.index, { state: g.lost ? "unhealthy" : "healthy", reasons: [] }]),
    ),
    fabric: undefined,
    leases: [],
    xids: (uuid) => xids?.get(uuid),
    hostname: 'node "7"',
    hostnameLabel: "Hostname",
  });
}

/** Checks the text exposition format line by line: comments, then `name{labels} value`. */
function assertExposition(text: string): void {
  const series = /^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="(\\.|[^"\\])*",?)*\})? -?[0-9.e+]+$/;
  const declared = new Set<string>();
  for (const line of text.split("\n")) {
    if (line === "") continue;
    const type = /^# TYPE (\S+) (gauge|counter|histogram)$/.exec(line);
    if (type) {
      assert.ok(!declared.has(type[1] as string), `${type[1]} declared twice`);
      declared.add(type[1] as string);
      continue;
    }
    if (line.startsWith("# HELP ")) continue;
    assert.match(line, series);
  }
}

describe("NvmlSampler", () => {
  it("reads identity once and telemetry every sweep, with unsupported values absent", () => {
    const sampler = new NvmlSampler(nvml, { simulatorPreset: "dgx-h100" });
    const first = sampler.sweep();
    const second = sampler.sweep();
    assert.equal(first.gpus.length, 8);
    assert.equal(second.sweep, 2);
    const g = second.gpus[0];
    assert.ok(g?.telemetry, "telemetry");
    assert.equal(g.identity, first.gpus[0]?.identity, "identity is read once per GPU");
    assert.equal(g.identity.name, "NVIDIA H100 80GB HBM3");
    assert.equal(g.identity.migCapable, true);
    assert.ok((g.telemetry.temperatureC ?? 0) > 0, "temperature");
    assert.equal(first.driver.simulatorPreset, "dgx-h100");
    assert.deepEqual(second.nvmlErrors, []);
    assert.ok(second.slowestCall, "the slowest call is named");
  });

  it("reads MIG layouts with profile names, slot maps and fragmentation, and follows changes", () => {
    const gpu = nvml.device(1);
    gpu.mig.setMode(true);
    gpu.mig.createGpuInstance(9, { start: 4, size: 4 }).createComputeInstance(2);
    const sampler = new NvmlSampler(nvml);
    const mig = sampler.sweep().gpus[1]?.mig;
    assert.ok(mig?.enabled, "MIG on");
    assert.equal(mig.memorySliceCount, 8);
    assert.deepEqual(
      mig.instances.map((i) => [i.profileName, i.placement.start]),
      [["3g.40gb", 4]],
    );
    assert.equal(mig.instances[0]?.computeInstances[0]?.profileName, "3g.40gb");
    assert.match(mig.slotMap, /^\[--\|--\|--\|--\|3g\.40gb/);
    assert.equal(mig.fragmentation?.freeMemorySlices, 4);
    assert.equal(mig.fragmentation?.largestFittingProfile, "4g.40gb");
    assert.equal(mig.fragmentation?.score, 0);
    assert.deepEqual(mig.exportedDevices, { "3g.40gb": 1 });
    // A new MIG device shows at the next sweep (its UUID changes the layout key).
    gpu.mig.createGpuInstance(19, { start: 0, size: 1 }).createComputeInstance(0);
    const after = sampler.sweep().gpus[1];
    assert.equal(after?.mig?.instances.length, 2);
    assert.deepEqual(after?.telemetry?.migDevices.map((m) => m.profileName).sort(), ["1g.10gb", "3g.40gb"]);
  });

  it("reports a lost GPU and keeps sweeping the others", () => {
    const sampler = new NvmlSampler(nvml);
    sampler.sweep();
    world.sim.setLost(5, true);
    const sweep = sampler.sweep();
    const lost = sweep.gpus.find((g) => g.identity.index === 5);
    assert.equal(lost?.lost, true);
    assert.ok(lost?.identity.uuid.startsWith("GPU-"), "a lost GPU keeps the identity read before");
    assert.equal(lost?.telemetry, undefined);
    assert.equal(sweep.gpus.filter((g) => !g.lost && g.telemetry).length, 7);
    assert.ok(
      sweep.nvmlErrors.some((e) => e.code === "TESSERA_NVML_GPU_IS_LOST"),
      "the error is counted by code",
    );
    const text = metrics(sweep);
    assert.match(text, /tessera_gpu_lost\{gpu="5",[^}]*\} 1/);
    assert.doesNotMatch(text, /DCGM_FI_DEV_GPU_TEMP\{gpu="5"/, "no values for a lost GPU");
  });
});

describe("metrics exposition", () => {
  it("is valid text format, with dcgm-exporter labels, and leaves out what is not supported", () => {
    const gpu = nvml.device(0);
    gpu.mig.setMode(true);
    gpu.mig.createGpuInstance(14, { start: 0, size: 2 }).createComputeInstance(1);
    const sweep = new NvmlSampler(nvml).sweep();
    const uuid = sweep.gpus[2]?.identity.uuid as string;
    const text = metrics(sweep, new Map([[uuid, { counts: new Map([[79, 2]]), last: 79 }]]));
    assertExposition(text);
    assert.match(text, /Hostname="node \\"7\\""/, "label values are escaped");
    assert.match(
      text,
      /^DCGM_FI_DEV_GPU_TEMP\{gpu="3",UUID="GPU-[^"]+",pci_bus_id="00000000:61:00\.0",device="nvidia3",modelName="NVIDIA H100 80GB HBM3",Hostname="node \\"7\\""\} \d+$/m,
    );
    // MIG GPU: utilization is not supported, so no series; memory per GPU instance.
    assert.doesNotMatch(text, /^DCGM_FI_DEV_GPU_UTIL\{gpu="0"/m);
    assert.match(text, /^DCGM_FI_DEV_FB_USED\{gpu="0",[^}]*GPU_I_PROFILE="2g\.20gb",GPU_I_ID="1"\} \d+$/m);
    assert.doesNotMatch(
      text,
      /^DCGM_FI_DEV_FB_USED\{gpu="0",[^}]*Hostname="[^"]*"\} /m,
      "no whole-GPU memory series besides the instances",
    );
    assert.match(
      text,
      /^DCGM_FI_DEV_XID_ERRORS\{gpu="2",[^}]*err_code="79",err_msg="GPU has fallen off the bus"\} 79$/m,
    );
    assert.match(text, /^tessera_xid_events_total\{gpu="2",[^}]*xid="79"\} 2$/m);
    assert.match(text, /^DCGM_FI_DEV_POWER_USAGE\{gpu="1",[^}]*\} \d+(\.\d+)?$/m);
    assert.match(text, /^tessera_leases 0$/m);
  });

  it("renders the same text from cached parts as from scratch, and follows what changed", () => {
    const sampler = new NvmlSampler(nvml);
    const renderer = new MetricsRenderer();
    const input = (sweep: SweepResult) => ({
      gpus: sweep.gpus,
      health: new Map(),
      fabric: undefined,
      leases: [],
      xids: () => undefined,
      hostname: "h",
      hostnameLabel: "Hostname",
    });
    const a = sampler.sweep();
    assert.equal(renderer.render(input(a)), renderSnapshotMetrics(input(a)));
    const b = sampler.sweep();
    assert.equal(renderer.render(input(b)), renderSnapshotMetrics(input(b)), "unchanged parts come from the cache");
    world.sim.startProcess({ gpu: 1, memoryMiB: 3000, smPercent: 70, name: "new.py" });
    const c = sampler.sweep();
    const text = renderer.render(input(c));
    assert.equal(text, renderSnapshotMetrics(input(c)));
    assert.match(text, /^DCGM_FI_DEV_FB_USED\{gpu="1",[^}]*\} 300\d$/m, "the new process's memory shows");
  });
});
