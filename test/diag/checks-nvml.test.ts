// The driver-level checks: nvml.library, nvml.versions, nvml.mig-permissions, gpu.count,
// gpu.reachable — each made to pass, warn and fail on the simulator (or, where the simulator
// cannot produce the fault, with the verdict's facts).
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, beforeEach, describe, it } from "node:test";
import { migPermissionsCheck, versionsVerdict } from "../../src/diag/check-nvml.js";
import { resolveConfig } from "../../src/diag/config.js";
import type { SystemFacts } from "../../src/diag/facts.js";
import { inProcessNvmlSource } from "../../src/diag/nvml-source.js";
import { openNvml } from "../../src/nvml/index.js";
import { COMMITTED_FIXTURES } from "../fixtures/make-sysfs.js";
import { createSimWorld, type SimWorld } from "../nvml/sim-world.js";
import { diagnose, evidenceMatches, expectCheck, result } from "./helpers.js";

let world: SimWorld;
before(() => {
  world = createSimWorld("dgx-h100");
});
after(() => world?.dispose());
beforeEach(() => world.reset("dgx-h100"));

function procWithMigCaps(t: { after: (fn: () => void) => void }, files: readonly ("config" | "monitor")[] | "none") {
  const dir = mkdtempSync(join(tmpdir(), "tessera-diag-proc-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  if (files === "none") return dir;
  const caps = join(dir, "driver", "nvidia", "capabilities", "mig");
  mkdirSync(caps, { recursive: true });
  for (const f of files) writeFileSync(join(caps, f), "DeviceFileMinor: 1\nDeviceFileMode: 256\nDeviceFileModify: 1\n");
  return dir;
}

async function enableMig(gpu: number): Promise<void> {
  const nvml = await openNvml();
  try {
    nvml.device(gpu).mig.setMode(true);
  } finally {
    nvml.shutdown();
  }
}

describe("nvml.library", () => {
  it("passes when NVML loads and initializes, naming the library", async () => {
    const r = await expectCheck("nvml.library", "pass");
    evidenceMatches(r, /libnvidia-ml-sim\.so\.1 \(Tessera's simulated driver\)/);
  });

  it("warns when nvmlInit is slow (persistence mode off)", async () => {
    world.sim.setLatency("nvmlInit_v2", 300_000);
    const r = await expectCheck("nvml.library", "warn", { thresholds: { slowInitMs: 200 } });
    evidenceMatches(r, /nvmlInit_v2 took 0\.[3-9] s/);
    assert.match(r.remediation, /persistence/);
  });

  it("fails when the library cannot be loaded, and the checks that need NVML are skipped", async () => {
    const nvml = inProcessNvmlSource(() => openNvml({ libraryPath: "/nonexistent/libnvidia-ml.so.1" }));
    const report = await diagnose({ only: ["nvml", "gpu.ecc"] }, { nvml });
    const lib = result(report, "nvml.library");
    assert.equal(lib.status, "fail");
    assert.match(lib.remediation, /Install the NVIDIA driver/);
    for (const id of ["nvml.versions", "gpu.ecc"]) {
      const r = result(report, id);
      assert.equal(r.status, "skip", id);
      evidenceMatches(r, /NVML is not available \(NVML_ERROR_LIBRARY_NOT_FOUND\): see nvml\.library/);
    }
    assert.equal(report.summary.exitCode, 2);
  });
});

describe("nvml.versions", () => {
  const system = (over: Partial<SystemFacts>): SystemFacts => ({
    libraryPath: "libnvidia-ml.so.1",
    simulated: false,
    initMs: 100,
    missingSymbols: [],
    driverVersion: "580.105.08",
    nvmlVersion: "13.580.105.08",
    cudaDriverVersion: { major: 13, minor: 0 },
    versionErrors: [],
    deviceCount: 8,
    gpus: [],
    ...over,
  });

  it("passes on the simulator's consistent driver, NVML and CUDA versions", async () => {
    const r = await expectCheck("nvml.versions", "pass");
    evidenceMatches(r, /driver 580\.105\.08, NVML 13\.580\.105\.08, CUDA 13\.0/);
  });

  const cases: { name: string; facts: Partial<SystemFacts>; status: string; evidence: RegExp }[] = [
    { name: "agreeing versions", facts: {}, status: "pass", evidence: /driver 580/ },
    {
      name: "an NVML library of another driver (upgrade without reboot)",
      facts: { nvmlVersion: "12.570.86.15" },
      status: "fail",
      evidence: /belongs to driver 570\.86\.15, the kernel runs 580\.105\.08/,
    },
    {
      name: "a CUDA major that is not NVML's",
      facts: { cudaDriverVersion: { major: 12, minor: 8 } },
      status: "warn",
      evidence: /is for CUDA 13\.x but the driver reports CUDA 12\.8/,
    },
    {
      name: "a version the driver would not report",
      facts: {
        cudaDriverVersion: undefined,
        versionErrors: [{ message: "NVML_ERROR_UNKNOWN", operation: "nvmlSystemGetCudaDriverVersion_v2" }],
      },
      status: "warn",
      evidence: /nvmlSystemGetCudaDriverVersion_v2 failed/,
    },
  ];
  for (const c of cases) {
    it(`${c.status === "pass" ? "passes" : `${c.status}s`} on ${c.name}`, () => {
      const v = versionsVerdict(system(c.facts));
      assert.equal(v.status, c.status);
      assert.ok(
        v.evidence.some((e) => c.evidence.test(e)),
        v.evidence.join("\n"),
      );
    });
  }
});

describe("nvml.mig-permissions", () => {
  it("passes for root", async () => {
    const r = await expectCheck("nvml.mig-permissions", "pass", {}, { euid: 0 });
    evidenceMatches(r, /running as root/);
  });

  it("passes for a user who can read mig/config", async (t) => {
    const procRoot = procWithMigCaps(t, ["config", "monitor"]);
    await expectCheck("nvml.mig-permissions", "pass", {}, { euid: 1000, procRoot });
  });

  it("warns when the user can list but not create MIG instances", async (t) => {
    const procRoot = procWithMigCaps(t, ["monitor"]);
    const r = await expectCheck("nvml.mig-permissions", "warn", {}, { euid: 1000, procRoot });
    evidenceMatches(r, /cannot read mig\/config \(absent\)/);
  });

  it("fails when MIG is enabled and the user cannot even list instances", async (t) => {
    await enableMig(1);
    const procRoot = procWithMigCaps(t, []);
    const r = await expectCheck("nvml.mig-permissions", "fail", {}, { euid: 1000, procRoot });
    evidenceMatches(r, /while MIG is enabled on GPU 1/);
  });

  it("skips on the simulator when the driver exposes no MIG capabilities", async (t) => {
    const procRoot = procWithMigCaps(t, "none");
    await expectCheck("nvml.mig-permissions", "skip", {}, { euid: 1000, procRoot });
  });

  it("skips a host without MIG-capable GPUs", () => {
    const v = migPermissionsCheck.verdict(
      {
        system: { gpus: [{ index: 0, migMode: undefined }] } as unknown as SystemFacts,
        capabilities: { euid: 1000, simulated: false, directory: false, config: "absent", monitor: "absent" },
      },
      resolveConfig(),
    );
    assert.equal(v.status, "skip");
  });
});

describe("gpu.count", () => {
  for (const [expected, status] of [
    [8, "pass"],
    [7, "warn"],
    [9, "fail"],
  ] as const) {
    it(`${status === "pass" ? "passes" : `${status}s`} when 8 GPUs are found and ${expected} are expected`, async () => {
      await expectCheck("gpu.count", status, { expectedGpuCount: expected });
    });
  }

  it("is skipped without an expectation or a PCI view", async () => {
    await expectCheck("gpu.count", "skip");
  });

  const pciOf = (model: "dgx-h100") => ({ fabric: COMMITTED_FIXTURES[model] });

  it("passes when NVML sees every NVIDIA GPU on the PCI bus", async () => {
    const r = await expectCheck("gpu.count", "pass", {}, pciOf("dgx-h100"));
    assert.deepEqual(r.evidence, ["NVML sees 8 GPUs, as on the PCI bus"]);
  });

  it("fails when the PCI bus has GPUs the driver did not initialize", async () => {
    world.reset("mixed");
    const r = await expectCheck("gpu.count", "fail", {}, pciOf("dgx-h100"));
    assert.deepEqual(r.evidence, ["NVML sees 3 GPUs, the PCI bus has 8: 5 not initialized by the driver"]);
  });
});

describe("gpu.reachable", () => {
  it("passes when every GPU answers", async () => {
    const r = await expectCheck("gpu.reachable", "pass");
    evidenceMatches(r, /8 of 8 GPUs answer/);
  });

  it("fails on a lost GPU and says to drain and reboot", async () => {
    world.sim.setLost(3, true);
    const r = await expectCheck("gpu.reachable", "fail");
    evidenceMatches(r, /GPU 3: lost \(nvmlDeviceGetHandleByIndex_v2 answered NVML_ERROR_GPU_IS_LOST\)/);
    assert.match(r.remediation, /drain the node and reboot/);
    assert.ok(r.evidence.includes("7 others fine"), r.evidence.join("\n"));
  });

  it("warns on a GPU that answers slowly", async () => {
    world.sim.setLatency("nvmlDeviceGetUUID", 60_000);
    const r = await expectCheck("gpu.reachable", "warn", { thresholds: { slowCallMs: 50 } });
    evidenceMatches(r, /nvmlDeviceGetUUID took 0\.\d s/);
  });
});
