import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, afterEach, before, beforeEach, describe, it } from "node:test";
import { SimulatedCrash } from "../../src/mig/apply.js";
import { MigBusyError, MigInfeasibleError, MigManager } from "../../src/mig/manager.js";
import { type Nvml, openNvml } from "../../src/nvml/index.js";
import { createSimWorld, type SimWorld } from "../nvml/sim-world.js";

const SHIPPED = readFileSync(new URL("../fixtures/mig/gpu-operator-default.yaml", import.meta.url), "utf8");

let world: SimWorld;
let nvml: Nvml;
let stateDir: string;

before(async () => {
  world = createSimWorld("dgx-h100");
  nvml = await openNvml();
});
after(() => {
  nvml?.shutdown();
  world?.dispose();
});
beforeEach(() => {
  world.reset("dgx-h100");
  stateDir = mkdtempSync(join(tmpdir(), "tessera-mig-state-"));
});
afterEach(() => rmSync(stateDir, { recursive: true, force: true }));

function spec(devices: Record<string, number>, gpus: number[] | "all" = [0], version = "v1"): string {
  const lines = Object.entries(devices).map(([k, v]) => `        "${k}": ${v}`);
  const sel = gpus === "all" ? "all" : `[${gpus.join(", ")}]`;
  return `version: ${version}\nmig-configs:\n  test:\n    - devices: ${sel}\n      mig-enabled: true\n      mig-devices:\n${lines.join("\n")}\n`;
}

async function manager(extra: Partial<ConstructorParameters<typeof MigManager>[0]> = {}): Promise<MigManager> {
  const m = new MigManager({ nvml, stateDir, ...extra });
  await m.init();
  return m;
}

/** Profile@start → MIG UUIDs of GPU `gpu`, from NVML. */
function layoutOf(gpu: number): Map<string, string[]> {
  const out = new Map<string, string[]>();
  const m = new MigManager({ nvml, stateDir });
  const g = m.show().find((v) => v.index === gpu);
  assert.ok(g?.geometry, "GPU has a known geometry");
  for (const gi of g.layout.instances) {
    const name = g.geometry.profiles.find((p) => p.id === gi.profileId)?.name ?? `?${gi.profileId}`;
    out.set(
      `${name}@${gi.placement.start}`,
      gi.computeInstances.map((ci) => ci.uuid),
    );
  }
  return out;
}

function orphanCheck(gpu: number): void {
  for (const gi of nvml.device(gpu).mig.gpuInstances()) {
    assert.ok(gi.computeInstances().length > 0, `GPU instance ${gi.id} has no compute instance (orphan)`);
  }
}

describe("MigManager", () => {
  it("enables MIG, learns the geometry, then places the layout explicitly", async () => {
    const m = await manager();
    const report = await m.apply(spec({ "3g.40gb": 1, "2g.20gb": 1, "1g.10gb": 2 }), "s.yaml", null);
    assert.deepEqual(
      report.results.map((r) => r.outcome),
      ["applied"],
    );
    assert.deepEqual([...layoutOf(0).keys()].sort(), ["1g.10gb@2", "1g.10gb@3", "2g.20gb@0", "3g.40gb@4"]);
    orphanCheck(0);
    assert.deepEqual(
      readdirSync(stateDir).filter((f) => f.startsWith("mig-journal")),
      [],
      "journal removed",
    );
  });

  it("is idempotent: the same spec twice changes nothing the second time", async () => {
    const m = await manager();
    const s = spec({ "1g.10gb": 7 }, "all");
    await m.apply(s, "s.yaml", null);
    const before = layoutOf(3);
    const second = await m.apply(s, "s.yaml", null);
    assert.ok(
      second.results.every((r) => r.outcome === "unchanged"),
      JSON.stringify(second.results),
    );
    assert.deepEqual(layoutOf(3), before, "same instances, same UUIDs");
  });

  it("keeps instances that still match, with their UUIDs, and destroys only what must go", async () => {
    const m = await manager();
    await m.apply(spec({ "3g.40gb": 1, "1g.10gb": 4 }), "s.yaml", null);
    const before = layoutOf(0);
    const big = [...before.entries()].find(([k]) => k.startsWith("3g.40gb"));
    assert.ok(big);
    const report = await m.apply(spec({ "3g.40gb": 1, "2g.20gb": 1, "1g.10gb": 2 }), "s.yaml", null);
    const plan = report.planned.plan.gpus[0];
    assert.ok(plan?.feasible);
    assert.equal(plan.destroy.length, 2, "two 1g instances go to make room for the 2g");
    const afterLayout = layoutOf(0);
    assert.deepEqual(afterLayout.get(big[0]), big[1], "the 3g instance keeps its MIG UUID");
  });

  it("applies 3g.40gb + 4g.40gb on an 80 GB GPU, which mig-parted's unplaced creation fails", async () => {
    const m = await manager();
    await m.apply(spec({ "4g.40gb": 1, "3g.40gb": 1 }), "s.yaml", null);
    assert.deepEqual([...layoutOf(0).keys()].sort(), ["3g.40gb@4", "4g.40gb@0"]);
  });

  it("refuses to destroy an instance with processes or a lease and names them, unless forced", async () => {
    const holders = new Map<string, string[]>();
    const m = await manager({ leaseHolders: (uuid) => holders.get(uuid) ?? [] });
    await m.apply(spec({ "3g.40gb": 2 }), "s.yaml", null);
    const uuids = [...layoutOf(0).values()].flat();
    const gi = nvml
      .device(0)
      .mig.gpuInstances()
      .find((g) => g.info().placement.start === 4);
    assert.ok(gi);
    const pid = world.sim.startProcess({
      gpu: 0,
      gpuInstanceId: gi.id,
      computeInstanceId: 0,
      memoryMiB: 100,
      smPercent: 10,
      name: "job",
    });
    holders.set(uuids[0] ?? "", ["team-a/train-42"]);
    const target = spec({ "1g.10gb": 7 });
    await assert.rejects(m.apply(target, "s.yaml", null), (err: unknown) => {
      assert.ok(err instanceof MigBusyError);
      assert.match(
        err.message,
        new RegExp(`GPU 0 \\(GPU-[0-9a-f-]+\\): destroying 3g\\.40gb@4 refused: 1 process running \\(pids ${pid}\\)`),
      );
      assert.match(err.message, /destroying 3g\.40gb@0 refused: leased by team-a\/train-42/);
      assert.match(err.message, /pass --force to proceed/);
      return true;
    });
    assert.deepEqual([...layoutOf(0).keys()].sort(), ["3g.40gb@0", "3g.40gb@4"], "nothing changed");
    // forced: the lease no longer stops it, but the driver still refuses to destroy under a running process,
    // so the GPU is rolled back to the same profiles at the same placements
    const forced = await m.apply(target, "s.yaml", null, { force: true });
    assert.equal(forced.results[0]?.outcome, "rolled-back");
    assert.match(forced.results[0]?.message ?? "", /IN_USE/);
    assert.deepEqual([...layoutOf(0).keys()].sort(), ["3g.40gb@0", "3g.40gb@4"]);
    orphanCheck(0);
    world.sim.stopProcess(pid);
    const done = await m.apply(target, "s.yaml", null, { force: true });
    assert.equal(done.results[0]?.outcome, "applied");
  });

  it("reports an infeasible layout before touching anything", async () => {
    const m = await manager();
    await m.apply(spec({ "1g.10gb": 2 }), "s.yaml", null);
    const before = layoutOf(0);
    await assert.rejects(m.apply(spec({ "3g.40gb": 2, "2g.20gb": 1 }), "s.yaml", null), MigInfeasibleError);
    assert.deepEqual(layoutOf(0), before);
  });

  it("leaves an Ampere MIG mode change pending until a GPU reset, then creates the layout", async () => {
    world.reset("dgx-a100");
    const m = await manager();
    const first = await m.apply(spec({ "3g.20gb": 1, "2g.10gb": 1, "1g.5gb": 2 }), "s.yaml", null);
    assert.equal(first.results[0]?.outcome, "pending-reset");
    assert.deepEqual(nvml.device(0).mig.mode(), { current: false, pending: true });
    world.sim.resetGpu(0);
    const second = await m.apply(spec({ "3g.20gb": 1, "2g.10gb": 1, "1g.5gb": 2 }), "s.yaml", null);
    assert.equal(second.results[0]?.outcome, "applied");
    assert.equal(layoutOf(0).size, 4);
  });

  it("reports a mode change blocked by running processes, naming them, and never resets the GPU", async () => {
    const pid = world.sim.startProcess({ gpu: 0, memoryMiB: 1000, smPercent: 20, name: "jupyter" });
    const m = await manager();
    const report = await m.apply(spec({ "1g.10gb": 1 }), "s.yaml", null);
    assert.equal(report.results[0]?.outcome, "pending-reset");
    assert.match(report.results[0]?.message ?? "", new RegExp(`blocked by 1 process\\(es\\) \\(pids ${pid}\\)`));
    assert.deepEqual(nvml.device(0).mig.mode(), { current: false, pending: true });
    assert.deepEqual(
      nvml
        .device(0)
        .computeProcesses()
        ?.map((p) => p.pid),
      [pid],
      "the process still runs: nothing reset the GPU",
    );
  });

  for (const [preset, config, gpus, ampere] of [
    ["dgx-h100", "all-balanced", 8, false],
    ["hgx-h200", "all-balanced", 8, false],
    ["a30x4", "all-balanced", 4, true],
    ["dgx-a100", "all-balanced", 8, true],
    ["dgx-h100", "all-1g.10gb", 8, false],
  ] as const) {
    it(`applies NVIDIA's shipped ${config} on ${preset}`, async () => {
      world.reset(preset);
      const m = await manager();
      if (ampere) {
        // Ampere: the mode change waits for a GPU reset, then the layout follows
        const pending = await m.apply(SHIPPED, "gpu-operator-default.yaml", config);
        assert.ok(
          pending.results.every((r) => r.outcome === "pending-reset"),
          JSON.stringify(pending.results),
        );
        for (let i = 0; i < gpus; i++) world.sim.resetGpu(i);
      }
      const report = await m.apply(SHIPPED, "gpu-operator-default.yaml", config);
      assert.equal(report.results.length, gpus);
      assert.ok(
        report.results.every((r) => r.outcome === "applied"),
        JSON.stringify(report.results),
      );
      for (let i = 0; i < gpus; i++) orphanCheck(i);
      const again = await m.apply(SHIPPED, "gpu-operator-default.yaml", config);
      assert.ok(again.results.every((r) => r.outcome === "unchanged"));
    });
  }

  it("exports the layout as a mig-parted config that plans to no change", async () => {
    const m = await manager();
    await m.apply(spec({ "3g.40gb": 1, "1g.10gb": 3 }), "s.yaml", null);
    const exported = m.exportConfig();
    assert.match(exported, /^version: v1\nmig-configs:\n {2}current:/);
    const planned = m.plan(exported, "export.yaml", "current");
    assert.ok(planned.plan.gpus.every((g) => g.feasible && !g.changed));
  });

  it("rolls back a failure part-way to the previous layout", async () => {
    const m = await manager({
      hooks: {
        afterMutation: (step) => {
          // after the first creation, something grabs the slot the plan needs next
          if (step === 3) nvml.device(0).mig.createGpuInstance(19, { start: 7 - 1, size: 1 });
        },
      },
    });
    const base = await manager();
    await base.apply(spec({ "1g.10gb": 2 }), "s.yaml", null);
    const before = layoutOf(0);
    const report = await m.apply(spec({ "3g.40gb": 2 }), "s.yaml", null);
    assert.equal(report.results[0]?.outcome, "rolled-back", JSON.stringify(report.results));
    const restored = layoutOf(0);
    for (const key of before.keys()) assert.ok(restored.has(key), `${key} restored at the same placement`);
  });
});

describe("crash recovery", () => {
  const from = spec({ "3g.40gb": 1, "1g.10gb": 4 });
  const to = spec({ "2g.20gb": 2, "3g.40gb": 1 });

  async function countMutations(): Promise<number> {
    let steps = 0;
    const m = await manager({ hooks: { afterMutation: (s) => (steps = s) } });
    await m.apply(from, "s.yaml", null);
    steps = 0;
    await m.apply(to, "s.yaml", null);
    return steps;
  }

  it("converges after a crash at every mutation step", async () => {
    const total = await countMutations();
    assert.ok(total >= 4, `the change takes several mutations (${total})`);
    for (let crashAt = 1; crashAt <= total; crashAt++) {
      world.reset("dgx-h100");
      rmSync(stateDir, { recursive: true, force: true });
      await (await manager()).apply(from, "s.yaml", null);
      const crashing = await manager({
        hooks: {
          afterMutation: (s) => {
            if (s === crashAt) throw new SimulatedCrash(s);
          },
        },
      });
      await assert.rejects(crashing.apply(to, "s.yaml", null), SimulatedCrash);
      assert.equal(readdirSync(stateDir).filter((f) => f.startsWith("mig-journal")).length, 1, "journal left behind");
      const restarted = new MigManager({ nvml, stateDir });
      const recovered = await restarted.init();
      assert.equal(recovered.length, 1);
      assert.ok(
        ["rolled-forward", "rolled-back", "already-consistent"].includes(recovered[0]?.outcome ?? ""),
        recovered[0]?.message,
      );
      assert.deepEqual(
        readdirSync(stateDir).filter((f) => f.startsWith("mig-journal")),
        [],
      );
      orphanCheck(0);
      const keys = [...layoutOf(0).keys()].sort();
      assert.ok(
        JSON.stringify(keys) === JSON.stringify(["2g.20gb@0", "2g.20gb@2", "3g.40gb@4"]) || keys.length === 5,
        `crash at ${crashAt}: consistent layout, got ${keys.join(" ")}`,
      );
    }
  });
});
