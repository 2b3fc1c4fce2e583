// XIDs: gpu.xid from kernel-log fixtures and the agent's history, gpu.xid-burst from XIDs the
// simulator raises during the standard level's window.
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, beforeEach, describe, it } from "node:test";
import type { XidObservation } from "../../src/diag/context.js";
import { inProcessNvmlSource } from "../../src/diag/nvml-source.js";
import { openNvml } from "../../src/nvml/index.js";
import { createSimWorld, type SimWorld } from "../nvml/sim-world.js";
import { DIAG_FIXTURES, evidenceMatches, expectCheck, NOW_MS } from "./helpers.js";

let world: SimWorld;
before(() => {
  world = createSimWorld("dgx-h100");
});
after(() => world?.dispose());
beforeEach(() => world.reset("dgx-h100"));

const kernelLog = (name: string) => ({
  kernelLog: { kind: "file" as const, path: join(DIAG_FIXTURES, name) },
  clock: () => NOW_MS,
});

describe("gpu.xid", () => {
  it("passes when the kernel log has no XIDs", async () => {
    const r = await expectCheck(
      "gpu.xid",
      "pass",
      {},
      { kernelLog: { kind: "file", path: "/dev/null" }, clock: () => NOW_MS },
    );
    evidenceMatches(r, /^no XIDs recently: read kernel log \(\/dev\/null\) since 2026-06-30T12:30:00\.000Z$/);
  });

  it("passes application XIDs, with the advice to restart the application, not the node", async () => {
    const r = await expectCheck("gpu.xid", "pass", {}, kernelLog("journal-app-faults.log"));
    evidenceMatches(
      r,
      /^GPU 0 \(00000000:1B:00\.0\): XID 13 ROBUST_CHANNEL_GR_EXCEPTION ×2, last 2026-07-01T10:15:21\.000Z \(kernel log, pid 4242 python3\)/,
    );
    evidenceMatches(r, /^GPU 1 \(00000000:43:00\.0\): XID 31 /);
    assert.match(r.remediation, /restart the application, not the node/);
  });

  it("warns on a row remap waiting for a GPU reset", async () => {
    const r = await expectCheck("gpu.xid", "warn", {}, kernelLog("journal-row-remap.log"));
    evidenceMatches(r, /^GPU 5 \(00000000:C3:00\.0\): XID 63 INFOROM_DRAM_RETIREMENT_EVENT ×1/);
    assert.match(r.remediation, /reset the GPU at its next idle moment/);
  });

  it("warns when an application XID recurs across jobs on one GPU", async () => {
    const r = await expectCheck("gpu.xid", "warn", {}, kernelLog("journal-recurring-app-fault.log"));
    evidenceMatches(r, /^GPU 6 .*XID 13 .*×3.*recurring \(3 ≥ 3\)$/);
    assert.match(r.remediation, /point at the GPU/);
  });

  it("fails on XID 79 within the lookback and ignores an older XID 48", async () => {
    const r = await expectCheck("gpu.xid", "fail", {}, kernelLog("journal-fallen-off-bus.log"));
    evidenceMatches(
      r,
      /^GPU 3 \(00000000:61:00\.0\): XID 79 ROBUST_CHANNEL_GPU_HAS_FALLEN_OFF_THE_BUS ×1, last 2026-07-01T12:00:03\.000Z \(kernel log\): GPU has fallen off the bus\.$/,
    );
    assert.match(
      r.remediation,
      /XID 79 \(GPU has fallen off the bus\): the GPU fell off the bus: drain the node and reboot it/,
    );
    assert.ok(!r.evidence.some((e) => e.includes("XID 48")), r.evidence.join("\n"));

    const week = await expectCheck(
      "gpu.xid",
      "fail",
      { xidLookbackMs: 7 * 86_400_000 },
      kernelLog("journal-fallen-off-bus.log"),
    );
    evidenceMatches(week, /^GPU 4 \(00000000:9D:00\.0\): XID 48 ROBUST_CHANNEL_GPU_ECC_DBE/);
  });

  it("fails on an XID from the agent's history (GSP timeout)", async () => {
    const history: XidObservation[] = [
      { code: 119, gpuIndex: 4, atMs: NOW_MS - 60_000, source: "NVML event" },
      { code: 79, gpuIndex: 2, atMs: NOW_MS - 3 * 86_400_000, source: "NVML event" },
    ];
    const r = await expectCheck("gpu.xid", "fail", {}, { clock: () => NOW_MS, xidHistory: () => history });
    evidenceMatches(r, /^GPU 4 \(00000000:9D:00\.0\): XID 119 GSP_RPC_TIMEOUT ×1, .*\(NVML event\)$/);
    assert.ok(!r.evidence.some((e) => e.includes("XID 79")), "history older than the lookback is ignored");
    assert.match(r.remediation, /GSP firmware timed out: drain the GPU and reset it/);
  });

  it("still reads the kernel log when NVML is down, naming GPUs by PCI address", async () => {
    const nvml = inProcessNvmlSource(() => openNvml({ libraryPath: "/nonexistent/libnvidia-ml.so.1" }));
    const r = await expectCheck("gpu.xid", "fail", {}, { nvml, ...kernelLog("journal-fallen-off-bus.log") });
    evidenceMatches(r, /^GPU at PCI 0000:61:00: XID 79 /);
  });

  it("is skipped when there is nothing to read", async () => {
    const r = await expectCheck("gpu.xid", "skip", {}, { kernelLog: { kind: "none" } });
    evidenceMatches(r, /kernel log not read/);
  });
});

describe("gpu.xid-burst (standard level)", () => {
  const standard = { level: "standard" as const, windowMs: 700 };
  const during = (fn: () => void) => setTimeout(fn, 150);

  it("passes a quiet window", async () => {
    const r = await expectCheck("gpu.xid-burst", "pass", standard);
    evidenceMatches(r, /^no XIDs during the window: read NVML XID events on GPU 0, 1, 2, 3, 4, 5, 6, 7 for 700 ms$/);
  });

  it("warns on a burst of application XIDs on one GPU", async () => {
    during(() => {
      for (let i = 0; i < 3; i++) world.sim.injectXid(1, 13);
    });
    const r = await expectCheck("gpu.xid-burst", "warn", standard);
    evidenceMatches(r, /^GPU 1 .*XID 13 .*×3.*\(NVML event\).*recurring/);
  });

  it("fails on XID 79 raised during the window", async () => {
    during(() => world.sim.injectXid(3, 79));
    const r = await expectCheck("gpu.xid-burst", "fail", standard);
    evidenceMatches(r, /^GPU 3 \(00000000:61:00\.0\): XID 79 .*\(NVML event\)/);
    assert.ok(r.durationMs >= 650, `waited out the window (${r.durationMs} ms)`);
  });
});
