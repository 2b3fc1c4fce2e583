// MIG consistency on the simulator: mig.layout (pending mode, instances without compute
// instances) and mig.leases (leases vs the instances that exist), including the lease
// checkpoint the local command reads.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, beforeEach, describe, it } from "node:test";
import { migLayoutVerdict } from "../../src/diag/check-mig.js";
import type { GpuProbe, MigFacts } from "../../src/diag/facts.js";
import { checkpointLeaseProvider, type LeaseRecord } from "../../src/diag/leases.js";
import { writeCheckpoint } from "../../src/ledger/checkpoint.js";
import type { Lease } from "../../src/ledger/types.js";
import { openNvml } from "../../src/nvml/index.js";
import { createSimWorld, type SimWorld } from "../nvml/sim-world.js";
import { evidenceMatches, expectCheck } from "./helpers.js";

let world: SimWorld;
before(() => {
  world = createSimWorld("dgx-h100");
});
after(() => world?.dispose());
beforeEach(() => world.reset("dgx-h100"));

interface Carved {
  gpuUuid: string;
  migUuid: string;
  gpuInstanceId: number;
  computeInstanceId: number;
}

/** MIG on `gpu` with a 3g.40gb instance at 4:4; with a compute instance unless `withCi` is false. */
async function carve(gpu: number, withCi = true): Promise<Carved> {
  const nvml = await openNvml();
  try {
    const device = nvml.device(gpu);
    device.mig.setMode(true);
    const gi = device.mig.createGpuInstance(9, { start: 4, size: 4 });
    const ci = withCi ? gi.createComputeInstance(2) : undefined;
    const mig = device.migDevices()[0];
    return {
      gpuUuid: device.uuid(),
      migUuid: mig?.uuid() ?? "",
      gpuInstanceId: gi.info().id,
      computeInstanceId: ci?.info().id ?? -1,
    };
  } finally {
    nvml.shutdown();
  }
}

const leaseOn = (c: Carved, gpuIndex: number, workloadId = "job-17"): LeaseRecord => ({
  workloadId,
  deviceUuid: c.migUuid,
  gpuIndex,
  gpuUuid: c.gpuUuid,
  gpuInstanceId: c.gpuInstanceId,
  computeInstanceId: c.computeInstanceId,
});

describe("mig.layout", () => {
  it("passes with MIG off everywhere", async () => {
    const r = await expectCheck("mig.layout", "pass");
    assert.equal(r.evidence[0], "MIG disabled on every GPU");
  });

  it("passes a carved GPU whose instances all have compute instances", async () => {
    await carve(2);
    const r = await expectCheck("mig.layout", "pass");
    evidenceMatches(r, /^GPU 2: MIG enabled, 1 GPU instances, 1 compute instances$/);
  });

  it("warns on a GPU instance without a compute instance", async () => {
    await carve(3, false);
    const r = await expectCheck("mig.layout", "warn");
    evidenceMatches(r, /^GPU 3: GPU instance \d+ \(3g\.40gb at 4:4\) has no compute instance$/);
  });

  it("warns on an Ampere MIG mode change that waits for a GPU reset", async () => {
    world.reset("dgx-a100");
    const nvml = await openNvml();
    try {
      nvml.device(1).mig.setMode(true);
    } finally {
      nvml.shutdown();
    }
    const r = await expectCheck("mig.layout", "warn");
    evidenceMatches(r, /^GPU 1: MIG mode change pending \(disabled now, enabled after the next reset\)$/);
    assert.match(r.remediation, /On Ampere a MIG mode change takes effect only at a GPU reset/);
    world.sim.resetGpu(1);
    await expectCheck("mig.layout", "pass");
  });

  it("fails when NVML contradicts itself about a GPU's instances", () => {
    const gpus: GpuProbe<MigFacts>[] = [
      {
        index: 0,
        facts: {
          uuid: "GPU-0",
          architecture: "Hopper",
          mode: { current: true, pending: true },
          gpuInstances: [],
          migDevices: [{ uuid: "MIG-x", gpuInstanceId: 3, computeInstanceId: 0, processCount: 0 }],
        },
      },
    ];
    const v = migLayoutVerdict(gpus);
    assert.equal(v.status, "fail");
    assert.match(v.evidence[0] ?? "", /MIG-x names GPU instance 3, which the GPU does not list/);
  });

  it("fails a GPU it cannot read (not lost)", () => {
    const v = migLayoutVerdict([
      {
        index: 4,
        error: { message: "nvmlDeviceGetMigMode failed: NVML_ERROR_UNKNOWN", nvmlCode: "NVML_ERROR_UNKNOWN" },
      },
    ]);
    assert.equal(v.status, "fail");
  });
});

describe("mig.leases", () => {
  it("is skipped without a lease source", async () => {
    const r = await expectCheck("mig.leases", "skip");
    evidenceMatches(r, /no lease source/);
  });

  it("passes when every lease names a device that exists", async () => {
    const c = await carve(2);
    const r = await expectCheck("mig.leases", "pass", {}, { leases: () => [leaseOn(c, 2)] });
    evidenceMatches(r, /^1 leases, each on a device that exists; 0 MIG devices free/);
  });

  it("warns on a MIG device that runs processes without a lease", async () => {
    const c = await carve(2);
    world.sim.startProcess({
      gpu: 2,
      gpuInstanceId: c.gpuInstanceId,
      computeInstanceId: c.computeInstanceId,
      memoryMiB: 512,
      smPercent: 30,
      name: "rogue",
    });
    const r = await expectCheck("mig.leases", "warn", {}, { leases: () => [] });
    evidenceMatches(r, new RegExp(`^GPU 2: ${c.migUuid} .* runs 1 processes but no workload leases it$`));
  });

  it("fails on a lease whose MIG device vanished (GPU reset)", async () => {
    const c = await carve(2);
    world.sim.resetGpu(2);
    const r = await expectCheck("mig.leases", "fail", {}, { leases: () => [leaseOn(c, 2)] });
    evidenceMatches(
      r,
      new RegExp(`^workload job-17 holds ${c.migUuid} .* on GPU 2: that MIG device no longer exists$`),
    );
    assert.match(r.remediation, /release the lease/);
  });

  it("fails on a whole-GPU lease of a GPU that is now partitioned", async () => {
    const c = await carve(1);
    const whole: LeaseRecord = {
      ...leaseOn(c, 1),
      deviceUuid: c.gpuUuid,
      gpuInstanceId: undefined,
      computeInstanceId: undefined,
    };
    const r = await expectCheck("mig.leases", "fail", {}, { leases: () => [whole] });
    evidenceMatches(r, /holds all of GPU 1, but MIG is enabled on it now/);
  });

  describe("from the agent's checkpoint file", () => {
    const lease = (c: Carved): Lease => ({
      workloadId: "job-9",
      tenant: "team-a",
      gpuIndex: 2,
      gpuUuid: c.gpuUuid,
      migUuid: c.migUuid,
      gpuInstanceId: c.gpuInstanceId,
      computeInstanceId: c.computeInstanceId,
      profileId: 9,
      profileName: "3g.40gb",
      placement: { start: 4, size: 4 },
      createdAtMs: 1,
      instanceCreated: true,
    });

    it("reads leases the ledger wrote, skips without a file, and fails on a corrupt one", async (t) => {
      const dir = mkdtempSync(join(tmpdir(), "tessera-diag-leases-"));
      t.after(() => rmSync(dir, { recursive: true, force: true }));
      const c = await carve(2);
      const path = join(dir, "leases.json");
      await writeCheckpoint(path, { leases: new Map([["job-9", lease(c)]]), pending: new Map(), orphans: [] }, 1);
      await expectCheck("mig.leases", "pass", {}, { leases: checkpointLeaseProvider(path) });

      const missing = await expectCheck(
        "mig.leases",
        "skip",
        {},
        { leases: checkpointLeaseProvider(join(dir, "none.json")) },
      );
      evidenceMatches(missing, /no lease checkpoint at .*none\.json/);

      writeFileSync(path, "{ not json");
      const corrupt = await expectCheck("mig.leases", "fail", {}, { leases: checkpointLeaseProvider(path) });
      evidenceMatches(corrupt, /could not read: lease checkpoint .* cannot be trusted/);
    });
  });
});
