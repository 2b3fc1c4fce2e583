import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import {
  fragmentationOf,
  fragmentationOfMask,
  placeabilityScore,
  placeableInMask,
  weightedFragmentation,
} from "../../src/mig/fragmentation.js";
import { placementMask } from "../../src/mig/geometry.js";
import { A30_24GB, H100_80GB, layoutOf, PRESETS } from "./geometries.js";

function fitsByName(frag: ReturnType<typeof fragmentationOf>): Record<string, number> {
  return Object.fromEntries(frag.fits.map((f) => [f.name, f.placeable]));
}

describe("fragmentation", () => {
  // reference/scheduling.md §3.1: free slices -> max placeable per profile.
  const table: [string, [string, number][], number, [number, number, number, number, number]][] = [
    ["empty", [], 8, [7, 3, 2, 1, 1]],
    [
      "1g@0 + 1g@1",
      [
        ["1g.10gb", 0],
        ["1g.10gb", 1],
      ],
      6,
      [5, 2, 1, 0, 0],
    ],
    [
      "1g@0 + 1g@4 (scattered)",
      [
        ["1g.10gb", 0],
        ["1g.10gb", 4],
      ],
      6,
      [5, 1, 0, 0, 0],
    ],
    [
      "1g@6 + 1g@5 (high first)",
      [
        ["1g.10gb", 6],
        ["1g.10gb", 5],
      ],
      6,
      [5, 2, 1, 1, 0],
    ],
    ["3g@4", [["3g.40gb", 4]], 4, [4, 2, 1, 1, 0]],
    ["3g@0", [["3g.40gb", 0]], 4, [3, 1, 1, 0, 0]],
  ];
  for (const [label, instances, free, [g1, g2, g3, g4, g7]] of table) {
    it(`counts what still fits: ${label}`, () => {
      const frag = fragmentationOf(H100_80GB, layoutOf(H100_80GB, instances).instances);
      assert.equal(frag.freeSlices, free);
      const fits = fitsByName(frag);
      assert.deepEqual(
        [fits["1g.10gb"], fits["2g.20gb"], fits["3g.40gb"], fits["4g.40gb"], fits["7g.80gb"]],
        [g1, g2, g3, g4, g7],
      );
    });
  }

  it("names the largest profile that still fits and the stranded slices", () => {
    const frag = fragmentationOf(
      H100_80GB,
      layoutOf(H100_80GB, [
        ["3g.40gb", 0],
        ["1g.10gb", 4],
        ["1g.10gb", 5],
        ["1g.10gb", 6],
      ]).instances,
    );
    assert.equal(frag.freeSlices, 1);
    assert.equal(frag.largestPlaceable, null, "slice 7 alone fits no profile");
    assert.equal(frag.unusableSlices, 1);
    const empty = fragmentationOf(H100_80GB, []);
    assert.equal(empty.largestPlaceable, "7g.80gb");
    const oneG = empty.fits.find((f) => f.name === "1g.10gb");
    assert.equal(oneG?.strandedSlices, 1, "1g can never use slice 7");
  });

  it("applies instance limits and the single media-extension rule", () => {
    const withMe = fragmentationOf(H100_80GB, layoutOf(H100_80GB, [["1g.10gb+me", 0]]).instances);
    assert.equal(fitsByName(withMe)["1g.10gb+me"], 0);
    assert.equal(fitsByName(fragmentationOfMask(H100_80GB, 0xfe))["1g.10gb+me"], 6, "slots alone ignore limits");
    const a30 = fragmentationOf(A30_24GB, layoutOf(A30_24GB, [["2g.12gb+me", 0]]).instances);
    assert.equal(fitsByName(a30)["1g.6gb+me"], 0, "one +me per GPU, whichever profile holds it");
  });

  it("weights stranded slices by the expected request mix", () => {
    const frag = fragmentationOf(H100_80GB, layoutOf(H100_80GB, [["3g.40gb", 0]]).instances);
    // 4 free: 3g strands 0, 2g strands 2, 1g strands 1.
    assert.equal(weightedFragmentation(frag, { "3g.40gb": 1, "2g.20gb": 0.5, "1g.10gb": 2 }), 0 + 1 + 2);
  });

  it("scores masks that keep large profiles placeable higher", () => {
    const free = (used: [number, number][]) => used.reduce((m, [s, n]) => m & ~placementMask(s, n), 0xff);
    assert.ok(placeabilityScore(H100_80GB, free([[6, 1]])) > placeabilityScore(H100_80GB, free([[0, 1]])));
    assert.ok(placeabilityScore(H100_80GB, free([[4, 4]])) > placeabilityScore(H100_80GB, free([[0, 4]])));
  });

  it("counts placeable instances exactly (property, every preset)", () => {
    for (const { geometry } of PRESETS) {
      const slices = geometry.memorySliceCount;
      fc.assert(
        fc.property(fc.integer({ min: 0, max: (1 << slices) - 1 }), (mask) => {
          for (const p of geometry.profiles) {
            // Brute force: the largest subset of pairwise disjoint free placements.
            const masks = p.placements.map((s) => placementMask(s, p.memorySlices)).filter((m) => (m & mask) === m);
            let best = 0;
            for (let bits = 0; bits < 1 << masks.length; bits++) {
              let used = 0;
              let ok = true;
              let n = 0;
              masks.forEach((m, i) => {
                if (!(bits & (1 << i))) return;
                if (used & m) ok = false;
                used |= m;
                n++;
              });
              if (ok) best = Math.max(best, n);
            }
            assert.equal(placeableInMask(p, mask), best, `${p.name} in ${mask.toString(2)}`);
          }
        }),
        { numRuns: 100 },
      );
    }
  });
});
