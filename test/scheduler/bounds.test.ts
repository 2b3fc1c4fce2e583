import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import type { GpuGeometry } from "../../src/mig/types.js";
import { allBalancedLayout } from "../../src/scheduler/baselines.js";
import {
  configurationLp,
  lowerBounds,
  maximalConfigurations,
  saturatedConfigurations,
} from "../../src/scheduler/bounds.js";
import { createClusterView } from "../../src/scheduler/cluster.js";
import { uniformWeights } from "../../src/scheduler/demand-histogram.js";
import { InProcessFleet, registerFleet } from "../../src/scheduler/in-process-fleet.js";
import { placeNow } from "../../src/scheduler/offline.js";
import { NO_CONSTRAINTS } from "../../src/scheduler/placement.js";
import { A30_24GB, A100_40GB, H100_80GB, PRESETS, profileNamed } from "../mig/geometries.js";

function only(geometry: GpuGeometry, names: readonly string[]): GpuGeometry {
  return { ...geometry, profiles: geometry.profiles.filter((p) => names.includes(p.name)) };
}

function counts(geometry: GpuGeometry, byName: Readonly<Record<string, number>>): Map<number, number> {
  return new Map(Object.entries(byName).map(([name, n]) => [profileNamed(geometry, name).id, n]));
}

describe("configurations of one GPU", () => {
  const plain = ["1g.5gb", "2g.10gb", "3g.20gb", "4g.20gb", "7g.40gb"];
  // reference/scheduling.md §3.1: 14 saturated layouts without 1g×2mem and +me, 38 with 1g×2mem.
  it("finds the 14 saturated layouts of an A100-40GB without 1g.10gb and +me, 12 of them undominated", () => {
    const g = only(A100_40GB, plain);
    assert.equal(saturatedConfigurations(g).length, 14);
    assert.equal(maximalConfigurations(g).length, 12);
  });

  it("finds 38 saturated layouts with 1g.10gb, 28 undominated", () => {
    const g = only(A100_40GB, [...plain, "1g.10gb"]);
    assert.equal(saturatedConfigurations(g).length, 38);
    assert.equal(maximalConfigurations(g).length, 28);
  });
});

describe("lower bounds", () => {
  it("reproduces §5.1 on the Alibaba 2023 compute-rounded mix (§3.3)", () => {
    const b = lowerBounds(
      H100_80GB,
      counts(H100_80GB, { "1g.10gb": 32, "2g.20gb": 280, "3g.40gb": 389, "4g.40gb": 971, "7g.80gb": 1406 }),
    );
    assert.equal(b.memory, Math.ceil((8 * 1406 + 4 * 971 + 4 * 389 + 2 * 280 + 32) / 8));
    assert.equal(b.compute, Math.ceil((7 * 1406 + 4 * 971 + 3 * 389 + 2 * 280 + 32) / 7));
    assert.equal(b.largeItems, 1406 + Math.max(971, Math.ceil((971 + 389) / 2)));
    assert.equal(b.best, 2377);
    assert.equal(b.configurationLp, 2377);
  });

  const table: [string, Record<string, number>, number][] = [
    ["three 3g need two GPUs", { "3g.40gb": 3 }, 2],
    ["a 4g and a 3g share one", { "4g.40gb": 1, "3g.40gb": 1 }, 1],
    ["two 4g need two", { "4g.40gb": 2 }, 2],
    ["eight 1g need two: a 1g never uses slice 7", { "1g.10gb": 8 }, 2],
    ["seven 1g fit one", { "1g.10gb": 7 }, 1],
    ["four 1g.20gb fit one", { "1g.20gb": 4 }, 1],
    ["two +me need two GPUs", { "1g.10gb+me": 2 }, 2],
  ];
  for (const [name, demand, gpus] of table) {
    it(name, () => {
      assert.equal(lowerBounds(H100_80GB, counts(H100_80GB, demand)).best, gpus);
    });
  }

  it("counts what the model cannot hold", () => {
    const b = lowerBounds(A30_24GB, new Map([[999, 3]]));
    assert.equal(b.unplaceable, 3);
    assert.equal(b.best, 0);
  });

  it("returns a certified value even from an imprecise dual", () => {
    const configs = maximalConfigurations(H100_80GB);
    const n = new Float64Array(H100_80GB.profiles.length).fill(1);
    const v = configurationLp(configs, n);
    assert.ok(v > 0 && v <= H100_80GB.profiles.length);
  });

  it("never exceeds what the scheduler actually packs (property)", () => {
    const preset = fc.constantFrom(...PRESETS.filter((p) => p.geometry.memorySliceCount === 8 || p.key === "A30-24GB"));
    fc.assert(
      fc.property(preset, fc.array(fc.nat(40), { minLength: 1, maxLength: 30 }), ({ geometry }, picks) => {
        const names = picks.map((i) => (geometry.profiles[i % geometry.profiles.length] as { name: string }).name);
        const demand: Record<string, number> = {};
        for (const n of names) demand[n] = (demand[n] ?? 0) + 1;
        const b = lowerBounds(geometry, counts(geometry, demand));
        const view = createClusterView();
        const fleet = new InProcessFleet(
          [{ nodeId: "n", geometry, gpuCount: names.length, dynamicMig: true }],
          () => 0,
        );
        registerFleet(view, fleet, 0, Number.POSITIVE_INFINITY);
        names.forEach((name, i) => {
          const placed = placeNow(
            view,
            {
              workloadId: `w${i}`,
              tenant: "t",
              target: { kind: "profile", name },
              count: 1,
              constraints: NO_CONSTRAINTS,
              priority: 0,
              allowSimulated: true,
            },
            { nowMs: 1, weights: uniformWeights(), policy: "fragmentation" },
          );
          assert.ok(placed, `${name} did not fit on ${names.length} GPUs`);
        });
        const used = new Set([...view.leases.values()].map((l) => l.gpuUuid)).size;
        assert.ok(b.best <= used, `bound ${b.best} > packed ${used}`);
        assert.ok(b.configurationLpValue + 1e-9 >= b.compute - 1, "the LP is at least the fractional compute bound");
      }),
      { numRuns: 60 },
    );
  });
});

describe("all-balanced baseline layout", () => {
  for (const { key, geometry } of PRESETS) {
    it(`is legal on ${key}`, () => {
      const layout = allBalancedLayout(geometry, (i) => `MIG-${i}`);
      let used = 0;
      let compute = 0;
      for (const gi of layout) {
        const mask = ((1 << gi.placement.size) - 1) << gi.placement.start;
        assert.equal(used & mask, 0);
        used |= mask;
        const p = geometry.profiles.find((x) => x.id === gi.profileId);
        assert.ok(p?.placements.includes(gi.placement.start));
        compute += p?.sliceCount ?? 0;
      }
      assert.equal(compute, geometry.computeSliceCount);
    });
  }
});
