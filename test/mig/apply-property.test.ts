// Property: on every preset, from reachable layouts to random desired layouts, apply either reaches the
// desired layout or reports it infeasible without changing anything; kept instances keep their UUIDs;
// no GPU instance is left without its compute instance.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import fc from "fast-check";
import { MigInfeasibleError, MigManager } from "../../src/mig/manager.js";
import type { GpuGeometry } from "../../src/mig/types.js";
import { type Nvml, openNvml } from "../../src/nvml/index.js";
import type { SimPreset } from "../../src/sim/control.js";
import { createSimWorld, type SimWorld } from "../nvml/sim-world.js";

let world: SimWorld;
let nvml: Nvml;
before(async () => {
  world = createSimWorld("dgx-h100");
  nvml = await openNvml();
});
after(() => {
  nvml?.shutdown();
  world?.dispose();
});

function specFor(gpu: number, names: readonly string[]): string {
  const counts = new Map<string, number>();
  for (const n of names) counts.set(n, (counts.get(n) ?? 0) + 1);
  const lines = [...counts].map(([k, v]) => `        "${k}": ${v}`);
  return `version: v1\nmig-configs:\n  p:\n    - devices: [${gpu}]\n      mig-enabled: true\n      mig-devices:${lines.length ? `\n${lines.join("\n")}` : " {}"}\n`;
}

interface Seen {
  names: string[];
  uuidByKey: Map<string, string>;
}

function observe(m: MigManager, gpu: number): Seen {
  const view = m.show().find((v) => v.index === gpu);
  assert.ok(view?.geometry);
  const geometry: GpuGeometry = view.geometry;
  const names: string[] = [];
  const uuidByKey = new Map<string, string>();
  for (const gi of view.layout.instances) {
    const name: string = geometry.profiles.find((p) => p.id === gi.profileId)?.name ?? "?";
    assert.equal(gi.computeInstances.length, 1, `GPU ${gpu}: ${name}@${gi.placement.start} has exactly its one CI`);
    names.push(name);
    uuidByKey.set(`${name}@${gi.placement.start}`, gi.computeInstances[0]?.uuid ?? "");
  }
  return { names: names.sort(), uuidByKey };
}

async function prepared(preset: SimPreset, stateDir: string): Promise<{ m: MigManager; geometries: GpuGeometry[] }> {
  world.reset(preset);
  const m = new MigManager({ nvml, stateDir });
  await m.init();
  const count = nvml.deviceCount();
  const all = `version: v1\nmig-configs:\n  enable-all:\n    - devices: all\n      mig-enabled: true\n      mig-devices: {}\n`;
  await m.apply(all, "enable.yaml", "enable-all");
  for (let i = 0; i < count; i++) if (!nvml.device(i).mig.mode()?.current) world.sim.resetGpu(i); // Ampere
  const geometries = m.show().map((v) => {
    assert.ok(v.geometry, `GPU ${v.index} geometry learned`);
    return v.geometry;
  });
  return { m, geometries };
}

for (const preset of ["dgx-h100", "dgx-a100", "hgx-h200", "a30x4", "mixed"] as const) {
  describe(`apply on ${preset}`, () => {
    it("reaches the desired layout or changes nothing, keeping kept UUIDs", async () => {
      const stateDir = mkdtempSync(join(tmpdir(), "tessera-mig-prop-"));
      try {
        const { m, geometries } = await prepared(preset, stateDir);
        const layouts = fc.tuple(
          fc.nat({ max: geometries.length - 1 }),
          fc.array(fc.array(fc.nat({ max: 20 }), { maxLength: 7 }), { minLength: 2, maxLength: 4 }),
        );
        let infeasible = 0;
        let applied = 0;
        await fc.assert(
          fc.asyncProperty(layouts, async ([gpu, steps]) => {
            const geometry = geometries[gpu] as GpuGeometry;
            const names = geometry.profiles.map((p) => p.name);
            for (const picks of steps) {
              const desired = picks.map((i) => names[i % names.length] as string);
              const before = observe(m, gpu);
              try {
                const report = await m.apply(specFor(gpu, desired), "p.yaml", "p");
                const plan = report.planned.plan.gpus.find((g) => g.gpu.index === gpu);
                assert.ok(plan?.feasible);
                const now = observe(m, gpu);
                assert.deepEqual(now.names, [...desired].sort(), "reached the desired layout");
                for (const keep of plan.keep) {
                  const key = `${keep.profileName}@${keep.placement.start}`;
                  assert.equal(now.uuidByKey.get(key), before.uuidByKey.get(key), `${key} kept its UUID`);
                }
                applied++;
              } catch (err) {
                if (!(err instanceof MigInfeasibleError)) throw err;
                assert.deepEqual(observe(m, gpu), before, "an infeasible layout changes nothing");
                infeasible++;
              }
            }
          }),
          { numRuns: 12, seed: 20261127 },
        );
        assert.ok(applied > 5, `exercised applies (${applied}) and infeasible layouts (${infeasible})`);
      } finally {
        rmSync(stateDir, { recursive: true, force: true });
      }
    });
  });
}
