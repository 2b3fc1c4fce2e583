// Fabric and topology checks on the fabric fault fixtures (test/fixtures/make-sysfs.ts), with
// the simulator's dgx-h100 GPUs (their bus ids match the fixture's).
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { after, before, beforeEach, describe, it } from "node:test";
import type { FabricSourceOptions } from "../../src/diag/context.js";
import { inProcessNvmlSource } from "../../src/diag/nvml-source.js";
import { loadExpectedFabric } from "../../src/fabric/expect-config.js";
import { openNvml } from "../../src/nvml/index.js";
import { tempDir } from "../fabric/helpers.js";
import { COMMITTED_FIXTURES, FAULTS, type HostOverrides, writeHostFixture } from "../fixtures/make-sysfs.js";
import { createSimWorld, type SimWorld } from "../nvml/sim-world.js";
import { evidenceMatches, expectCheck } from "./helpers.js";

const EXPECT_H100 = join(import.meta.dirname, "..", "fixtures", "fabric", "expect-dgx-h100.yaml");

let world: SimWorld;
before(() => {
  world = createSimWorld("dgx-h100");
});
after(() => world?.dispose());
beforeEach(() => world.reset("dgx-h100"));

async function fabric(paths: { sysfsRoot: string; procRoot: string }, expect = true): Promise<FabricSourceOptions> {
  return { ...paths, ...(expect ? { expectations: await loadExpectedFabric(EXPECT_H100) } : {}) };
}

function faultTree(t: { after: (fn: () => void) => void }, overrides: HostOverrides) {
  return writeHostFixture(tempDir(t, "tessera-diag-fabric-"), "dgx-h100", overrides);
}

const firstPhase = (name: keyof typeof FAULTS) => FAULTS[name].phases[0] as HostOverrides;

describe("fabric.ports", () => {
  it("passes the healthy DGX H100 against its expected fabric", async () => {
    const r = await expectCheck("fabric.ports", "pass", {}, { fabric: await fabric(COMMITTED_FIXTURES["dgx-h100"]) });
    evidenceMatches(r, /^12 of 12 ports healthy/);
  });

  it("warns on a port that trained at 1X (width downgrade)", async (t) => {
    // Judged against its peers: with the expected fabric the missing 400 Gb/s port fails the host.
    const paths = faultTree(t, firstPhase("width-downgrade"));
    const r = await expectCheck("fabric.ports", "warn", {}, { fabric: await fabric(paths, false) });
    evidenceMatches(r, /^mlx5_5\/1: degraded: link width 1X, its InfiniBand peers run at 4X/);
    assert.match(r.remediation, /reseat the cable/);
  });

  it("fails on a port that is down (pulled cable)", async (t) => {
    const paths = faultTree(t, firstPhase("link-down"));
    const r = await expectCheck("fabric.ports", "fail", {}, { fabric: await fabric(paths) });
    evidenceMatches(r, /^mlx5_4\/1 \(compute\): down: /);
    assert.match(r.remediation, /Polling means no link partner/);
  });

  it("fails when an expected port is missing", async (t) => {
    const paths = faultTree(t, firstPhase("missing-port"));
    const r = await expectCheck("fabric.ports", "fail", {}, { fabric: await fabric(paths) });
    evidenceMatches(r, /expected port mlx5_10\/1 is missing/);
  });

  it("is skipped on a host without RDMA devices and no expectation", async (t) => {
    const empty = tempDir(t, "tessera-diag-nosys-");
    mkdirSync(join(empty, "class", "net"), { recursive: true });
    const r = await expectCheck("fabric.ports", "skip", {}, { fabric: { sysfsRoot: empty, procRoot: empty } });
    evidenceMatches(r, /no RDMA devices under/);
  });

  it("is skipped without a fabric source", async () => {
    await expectCheck("fabric.ports", "skip");
  });
});

describe("topology.gpu-nic", () => {
  it("passes when every GPU has its rail NIC at PIX", async () => {
    const r = await expectCheck(
      "topology.gpu-nic",
      "pass",
      {},
      { fabric: await fabric(COMMITTED_FIXTURES["dgx-h100"]) },
    );
    assert.equal(r.evidence[0], "every GPU has a healthy NIC within PXB (GPUs from NVML)");
    evidenceMatches(r, /^GPU 0 \(00000000:1B:00\.0\): mlx5_0 at PIX$/);
  });

  it("warns on a GPU whose rail NIC is down, so its traffic crosses the CPU", async (t) => {
    const paths = faultTree(t, firstPhase("link-down"));
    const r = await expectCheck("topology.gpu-nic", "warn", {}, { fabric: await fabric(paths) });
    evidenceMatches(
      r,
      /^GPU 2 \(00000000:52:00\.0\): nearest healthy NIC mlx5_\d+ is (PHB|NODE|SYS): GPUDirect RDMA needs PXB or closer$/,
    );
  });

  it("fails on GPUs with no healthy NIC at all", async (t) => {
    const down = { state: "1: DOWN", physState: "2: Polling", rate: "10 Gb/sec (4X SDR)", lid: "0xffff" };
    const compute = ["mlx5_0", "mlx5_3", "mlx5_4", "mlx5_5", "mlx5_6", "mlx5_9", "mlx5_10", "mlx5_11"];
    const paths = faultTree(t, { ports: Object.fromEntries(compute.map((d) => [`${d}/1`, down])) });
    const r = await expectCheck("topology.gpu-nic", "fail", {}, { fabric: await fabric(paths) });
    evidenceMatches(r, /^GPU 7 \(00000000:DF:00\.0\): no healthy NIC$/);
  });

  it("finds GPUs by a PCI scan when NVML is down", async () => {
    const nvml = inProcessNvmlSource(() => openNvml({ libraryPath: "/nonexistent/libnvidia-ml.so.1" }));
    const r = await expectCheck(
      "topology.gpu-nic",
      "pass",
      {},
      { nvml, fabric: await fabric(COMMITTED_FIXTURES["dgx-h100"]) },
    );
    assert.equal(r.evidence[0], "every GPU has a healthy NIC within PXB (GPUs from sysfs PCI scan)");
  });
});

describe("fabric.error-rates (standard level)", () => {
  const standard = { level: "standard" as const, windowMs: 600 };

  /** The healthy host now, `later` written while the window runs. */
  async function windowed(t: { after: (fn: () => void) => void }, later: HostOverrides) {
    const dir = tempDir(t, "tessera-diag-fabric-");
    const paths = writeHostFixture(dir, "dgx-h100", {});
    setTimeout(() => writeHostFixture(dir, "dgx-h100", later), 200);
    return { fabric: await fabric(paths) };
  }

  it("passes when no error counter moves", async (t) => {
    const r = await expectCheck("fabric.error-rates", "pass", standard, await windowed(t, {}));
    evidenceMatches(r, /^12 ports read 0\.\d s apart$/);
  });

  it("warns on a few symbol errors", async (t) => {
    const r = await expectCheck(
      "fabric.error-rates",
      "warn",
      standard,
      await windowed(t, { ports: { "mlx5_3/1": { counterDeltas: { symbol_error: 50n } } } }),
    );
    evidenceMatches(r, /^mlx5_3\/1 \(compute\): degraded: symbol_error/);
  });

  it("fails on a symbol error storm (the fault fixture's second phase)", async (t) => {
    const storm = FAULTS["symbol-error-storm"].phases[1] as HostOverrides;
    const r = await expectCheck("fabric.error-rates", "fail", standard, await windowed(t, storm));
    evidenceMatches(r, /^mlx5_3\/1 \(compute\): degraded: .*symbol_error/);
    assert.match(r.remediation, /replace the cable or transceiver/);
  });
});
