import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  arrivals,
  createRng,
  demandList,
  MIXES,
  mixNamed,
  sampleAlibabaMilli,
  targetFor,
} from "../../src/scheduler/demand.js";
import { DemandHistogram, weightOf } from "../../src/scheduler/demand-histogram.js";
import { resolveTarget, smallestAdequateProfile } from "../../src/scheduler/profiles.js";
import { A100_40GB, H100_80GB } from "../mig/geometries.js";

describe("demand", () => {
  it("is reproducible from its seed", () => {
    const a = createRng(42);
    const b = createRng(42);
    const xs = Array.from({ length: 100 }, () => a());
    assert.deepEqual(
      xs,
      Array.from({ length: 100 }, () => b()),
    );
    assert.ok(xs.every((x) => x >= 0 && x < 1));
    for (const mix of MIXES) assert.deepEqual(demandList(mix, 50, 7), demandList(mix, 50, 7));
  });

  it("draws gpu_milli like the Alibaba 2023 sharing pods (reference §3.3)", () => {
    const rng = createRng(1);
    const xs = Array.from({ length: 60_000 }, () => sampleAlibabaMilli(rng)).sort((a, b) => a - b);
    const share = (f: (x: number) => boolean) => xs.filter(f).length / xs.length;
    assert.ok(Math.abs(share((x) => x === 810) - 1078 / 3078) < 0.01, "the 810 spike");
    assert.ok(Math.abs(share((x) => x <= 125) - 31 / 3078) < 0.005);
    assert.ok(Math.abs(share((x) => x > 500) - 1478 / 3078) < 0.01);
    assert.equal(xs[Math.floor(xs.length / 2)], 470, "median 470");
    const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
    assert.ok(Math.abs(mean - 563) < 15, `mean ${mean} near the trace's 563`);
  });

  it("rounds the compute-shaped trace to mostly 7g and 4g, as §3.3 computes (45.7% 7g)", () => {
    const items = demandList(mixNamed("alibaba2023-compute"), 20_000, 3);
    const names = items.map((i) => {
      const r = resolveTarget(H100_80GB, targetFor(i.request, H100_80GB));
      assert.ok(r.ok);
      return r.profile.name;
    });
    const share = (n: string) => names.filter((x) => x === n).length / names.length;
    assert.ok(Math.abs(share("7g.80gb") - 1406 / 3078) < 0.02, `7g ${share("7g.80gb")}`);
    assert.ok(Math.abs(share("4g.40gb") - 971 / 3078) < 0.02, `4g ${share("4g.40gb")}`);
  });

  it("turns memory fractions into the profile of that many memory slices on each model", () => {
    for (const geometry of [H100_80GB, A100_40GB]) {
      const name = (f: number) =>
        resolveTarget(geometry, targetFor({ kind: "shape", computeFraction: 0, memoryFraction: f }, geometry));
      const got = [1 / 8, 2 / 8, 4 / 8, 1].map((f) => {
        const r = name(f);
        return r.ok ? r.profile.memorySlices : -1;
      });
      assert.deepEqual(got, [1, 2, 4, 8], geometry.model);
    }
  });

  it("streams arrivals in time order with positive lifetimes", () => {
    const s = arrivals(mixNamed("uniform"), {
      seed: 3,
      arrivalsPerSecond: 10,
      meanDurationMs: 1000,
      tenants: ["a", "b"],
    });
    let last = 0;
    for (let i = 0; i < 200; i++) {
      const item = s.next().value;
      assert.ok(item.arrivalMs > last && item.durationMs > 0);
      assert.ok(["a", "b"].includes(item.tenant));
      last = item.arrivalMs;
    }
    assert.ok(last > 10_000 && last < 30_000, "about 10 per second");
  });
});

describe("demand histogram", () => {
  it("halves the weight of requests one half-life old", () => {
    const h = new DemandHistogram({ halfLifeMs: 1000, priorCount: 0, refreshEvery: 1 });
    h.record(["3g.4m"], 0);
    h.record(["1g.1m"], 1000);
    const c = h.counts(1000);
    assert.ok(Math.abs((c.get("3g.4m") ?? 0) - 0.5) < 1e-9);
    assert.ok(Math.abs((c.get("1g.1m") ?? 0) - 1) < 1e-9);
    const w = h.weights(1000);
    assert.ok(Math.abs(weightOf(w, "1g.1m") / weightOf(w, "3g.4m") - 2) < 1e-9);
  });

  it("splits a request across the classes it could land on", () => {
    const h = new DemandHistogram({ priorCount: 0, refreshEvery: 1 });
    h.record(["1g.2m", "3g.4m"], 0);
    const c = h.counts(0);
    assert.equal(c.get("1g.2m"), 0.5);
    assert.equal(c.get("3g.4m"), 0.5);
  });

  it("keeps one weights object until a refresh is due, so placement tables are reused", () => {
    const h = new DemandHistogram({ refreshEvery: 3, refreshIntervalMs: 1e9 });
    const w0 = h.weights(0);
    h.record(["1g.1m"], 0);
    h.record(["1g.1m"], 0);
    assert.equal(h.weights(0), w0);
    h.record(["1g.1m"], 0);
    assert.notEqual(h.weights(0), w0);
  });

  it("weighs unseen classes by the prior before anything is recorded", () => {
    const w = new DemandHistogram().weights(0);
    assert.ok(weightOf(w, "7g.8m") > 0);
    assert.equal(weightOf(w, "7g.8m"), weightOf(w, "1g.1m"));
  });
});

describe("profiles", () => {
  const table: [string, number, number, string | null][] = [
    ["tiny", 100, 0.01, "1g.10gb"],
    ["memory over a 1g", 12_000, 0.1, "1g.20gb"],
    ["compute 2/7", 1000, 2 / 7, "2g.20gb"],
    ["compute just above 2/7", 1000, 0.3, "3g.40gb"],
    ["half the memory, little compute", 40_000, 0.1, "3g.40gb"],
    ["4/7 compute", 1000, 4 / 7, "4g.40gb"],
    ["everything", 81_152, 1, "7g.80gb"],
    ["more than the GPU", 90_000, 0.1, null],
  ];
  for (const [name, memoryMiB, computeFraction, want] of table) {
    it(`maps a shape to the smallest adequate H100 profile: ${name}`, () => {
      assert.equal(smallestAdequateProfile(H100_80GB, { memoryMiB, computeFraction })?.name ?? null, want);
    });
  }

  it("resolves a compute-instance name to its GPU instance profile", () => {
    const r = resolveTarget(H100_80GB, { kind: "profile", name: "1c.3g.40gb" });
    assert.ok(r.ok);
    assert.equal(r.profile.name, "3g.40gb");
  });
});
