// The runner: concurrency, per-check timeouts, cancellation, streaming, selection, and the
// probe host that keeps a hung NVML call from hanging the run.
import assert from "node:assert/strict";
import { after, before, beforeEach, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { FactsUnavailableError } from "../../src/diag/errors.js";
import { inProcessNvmlSource } from "../../src/diag/nvml-source.js";
import { probeHostNvmlSource } from "../../src/diag/probe-host-client.js";
import { runDiagnostics } from "../../src/diag/runner.js";
import type { Check, CheckResult } from "../../src/diag/types.js";
import { InputError } from "../../src/errors.js";
import { openNvml } from "../../src/nvml/index.js";
import { COMMITTED_FIXTURES } from "../fixtures/make-sysfs.js";
import { createSimWorld, type SimWorld } from "../nvml/sim-world.js";
import { diagnose, evidenceMatches, result } from "./helpers.js";

let world: SimWorld;
before(() => {
  world = createSimWorld("dgx-h100");
});
after(() => world?.dispose());
beforeEach(() => world.reset("dgx-h100"));

const PARAMS = { windowMs: 0, sampleIntervalMs: 100 };

describe("probe host", () => {
  it("finishes the report when an NVML call hangs: the check times out naming the call", async (t) => {
    t.after(() => world.sim.setLatency("nvmlDeviceGetPowerUsage", 0));
    // 30 s inside nvmlDeviceGetPowerUsage; the limit leaves the probe threads (tsx, two busy cores) time to start.
    world.sim.setLatency("nvmlDeviceGetPowerUsage", 30_000_000);
    const nvml = probeHostNvmlSource({ libraryPath: world.libraryPath });
    const started = performance.now();
    const report = await runDiagnostics(
      { nvml, kernelLog: { kind: "none" } },
      { checkTimeoutMs: 4000, only: ["gpu", "nvml.library"] },
    );
    await nvml.close();
    const elapsedMs = performance.now() - started;
    assert.ok(elapsedMs < 7000, `report and close took ${Math.round(elapsedMs)} ms`);

    const throttle = result(report, "gpu.throttle");
    assert.equal(throttle.status, "fail");
    assert.equal(throttle.timedOut, true);
    evidenceMatches(throttle, /^no answer within 4\.0 s$/);
    evidenceMatches(throttle, /^nvmlDeviceGetPowerUsage on GPU 0 had not returned after \d+\.\d s$/);
    assert.match(throttle.remediation, /An NVML call did not return/);
    // The other families answered: one hung call costs one family.
    for (const id of ["nvml.library", "gpu.reachable", "gpu.ecc", "gpu.memory-repair", "gpu.pcie"]) {
      assert.equal(result(report, id).status, "pass", id);
      assert.equal(result(report, id).timedOut, false, id);
    }
    assert.equal(report.summary.exitCode, 2);
  });

  it("bounds a hung nvmlInit: every NVML check times out and the run still ends", async (t) => {
    t.after(() => world.sim.setLatency("nvmlInit_v2", 0));
    world.sim.setLatency("nvmlInit_v2", 30_000_000);
    const nvml = probeHostNvmlSource({ libraryPath: world.libraryPath });
    const started = performance.now();
    const report = await runDiagnostics({ nvml }, { checkTimeoutMs: 4000, only: ["nvml.library", "gpu.ecc"] });
    await nvml.close();
    assert.ok(performance.now() - started < 7000);
    const lib = result(report, "nvml.library");
    assert.equal(lib.status, "fail");
    assert.equal(lib.timedOut, true);
    evidenceMatches(lib, /^nvmlInit_v2 had not returned after/);
  });

  it("gives the same facts as in-process probing, across the process boundary", async () => {
    world.sim.setEcc(2, { sbeVolatile: 1, dbeVolatile: 2, sbeAggregate: 3, dbeAggregate: 4 });
    const host = probeHostNvmlSource({ libraryPath: world.libraryPath });
    const local = inProcessNvmlSource(() => openNvml({ readOnly: true }));
    try {
      const [a, b] = await Promise.all([host.probe("memory", PARAMS), local.probe("memory", PARAMS)]);
      assert.deepEqual(a, b);
      const [s1, s2] = await Promise.all([host.probe("system", PARAMS), local.probe("system", PARAMS)]);
      const untimed = (s: typeof s1) => ({
        ...s,
        initMs: 0,
        gpus: s.gpus.map((g) => ({ ...g, slowestCall: undefined })),
      });
      assert.deepEqual(untimed(s1), untimed(s2));
    } finally {
      await Promise.all([host.close(), local.close()]);
    }
  });

  it("reports NVML that cannot be opened as such", async () => {
    const nvml = probeHostNvmlSource({ libraryPath: "/nonexistent/libnvidia-ml.so.1" });
    try {
      const report = await runDiagnostics({ nvml }, { only: ["nvml.library", "gpu.ecc"] });
      assert.equal(result(report, "nvml.library").status, "fail");
      assert.equal(result(report, "gpu.ecc").status, "skip");
    } finally {
      await nvml.close();
    }
  });

  it("passes a healthy host end to end (quick level, every source)", async () => {
    const nvml = probeHostNvmlSource({ libraryPath: world.libraryPath });
    const { sysfsRoot, procRoot } = COMMITTED_FIXTURES["dgx-h100"];
    try {
      const report = await runDiagnostics(
        {
          nvml,
          kernelLog: { kind: "file", path: "/dev/null" },
          fabric: { sysfsRoot, procRoot },
          euid: 0,
          leases: () => [],
        },
        { expectedGpuCount: 8 },
      );
      const notPassing = report.results.filter((r) => r.status !== "pass");
      assert.deepEqual(notPassing, [], JSON.stringify(notPassing, null, 2));
      assert.equal(report.results.length, 14);
      assert.equal(report.summary.exitCode, 0);
    } finally {
      await nvml.close();
    }
  });
});

describe("runDiagnostics", () => {
  const never: Check<unknown> = {
    id: "test.never",
    title: "never answers",
    level: "quick",
    reads: [],
    timeoutMs: 100,
    gather: () => new Promise(() => undefined),
    verdict: () => ({ status: "pass", evidence: [], remediation: "" }),
  };
  const throwsInVerdict: Check<number> = {
    id: "test.throws",
    title: "throws",
    level: "quick",
    reads: [],
    gather: async () => 1,
    verdict: () => {
      throw new Error("boom");
    },
  };
  const unavailable: Check<number> = {
    id: "test.unavailable",
    title: "unavailable",
    level: "quick",
    reads: [],
    gather: async () => {
      throw new FactsUnavailableError("nothing to read here");
    },
    verdict: () => ({ status: "pass", evidence: [], remediation: "" }),
  };

  it("times a check out on its own limit without holding up the others", async () => {
    const report = await diagnose({ checks: [never, unavailable], checkTimeoutMs: 60_000 });
    const r = result(report, "test.never");
    assert.equal(r.status, "fail");
    assert.equal(r.timedOut, true);
    assert.deepEqual(r.evidence, ["no answer within 0.1 s"]);
    assert.ok(report.durationMs < 2000);
  });

  it("turns an unavailable source into a skip and a broken verdict into a failure", async () => {
    const report = await diagnose({ checks: [throwsInVerdict, unavailable] });
    assert.equal(result(report, "test.unavailable").status, "skip");
    assert.deepEqual(result(report, "test.unavailable").evidence, ["nothing to read here"]);
    assert.equal(result(report, "test.throws").status, "fail");
    evidenceMatches(result(report, "test.throws"), /internal error judging the facts: boom/);
  });

  it("streams each result as it completes and reports them in checklist order", async () => {
    const streamed: CheckResult[] = [];
    const report = await diagnose({ onResult: (r) => streamed.push(r), only: ["gpu", "nvml.library"] });
    assert.equal(streamed.length, report.results.length);
    assert.deepEqual(new Set(streamed.map((r) => r.id)), new Set(report.results.map((r) => r.id)));
    assert.deepEqual(
      report.results.map((r) => r.id),
      [
        "nvml.library",
        "gpu.count",
        "gpu.reachable",
        "gpu.xid",
        "gpu.ecc",
        "gpu.memory-repair",
        "gpu.throttle",
        "gpu.pcie",
      ],
    );
  });

  it("runs the windowed checks only at standard level, and rejects checks the level does not have", async () => {
    const quick = await diagnose({ only: ["gpu"] });
    assert.ok(!quick.results.some((r) => r.level === "standard"));
    await assert.rejects(diagnose({ only: ["gpu.xid-burst"] }), InputError);
    await assert.rejects(diagnose({ only: ["gpu.nonsense"] }), /no such check at this level/);
    const standard = await diagnose({ level: "standard", windowMs: 200, only: ["gpu.xid-burst"] });
    assert.equal(standard.results[0]?.level, "standard");
    assert.equal(standard.windowMs, 200);
  });

  it("rejects a configuration out of range, naming the field", async () => {
    for (const [options, field] of [
      [{ level: "standard", windowMs: 0 }, /^windowMs: /],
      [{ level: "standard", windowMs: 7_200_000 }, /^windowMs: .*at most 3600000/],
      [{ checkTimeoutMs: -1 }, /^checkTimeoutMs: /],
      [{ expectedGpuCount: 2.5 }, /^expectedGpuCount: /],
      [{ level: "thorough" }, /^level: /],
    ] as const) {
      await assert.rejects(
        diagnose(options as never),
        (err: unknown) => err instanceof InputError && field.test(err.message),
      );
    }
  });

  it("stops waiting when cancelled: unfinished checks are skipped", async () => {
    const controller = new AbortController();
    const pending = diagnose({
      level: "standard",
      windowMs: 30_000,
      only: ["gpu.throttle-residency", "gpu.ecc"],
      signal: controller.signal,
    });
    await sleep(300);
    controller.abort();
    const report = await pending;
    const residency = result(report, "gpu.throttle-residency");
    assert.equal(residency.status, "skip");
    assert.deepEqual(residency.evidence, ["cancelled before it finished"]);
    assert.equal(result(report, "gpu.ecc").status, "pass");
    assert.ok(report.durationMs < 5000);
  });
});
