import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { buildGeometry, freePlacements, GeometryError, placementMask } from "../../src/mig/geometry.js";
import { renderSlotMap } from "../../src/mig/slot-map.js";
import { A30_24GB, A30_24GB_INPUT, H100_80GB, H100_80GB_INPUT, layoutOf, profileNamed } from "./geometries.js";

describe("geometry", () => {
  it("learns slice counts from the placements NVML reports", () => {
    assert.equal(H100_80GB.memorySliceCount, 8);
    assert.equal(H100_80GB.computeSliceCount, 7);
    assert.equal(A30_24GB.memorySliceCount, 4);
    assert.equal(A30_24GB.computeSliceCount, 4);
  });

  it("keeps what a profile needs to be placed and created", () => {
    const threeG = profileNamed(H100_80GB, "3g.40gb");
    assert.deepEqual(threeG.placements, [0, 4]);
    assert.equal(threeG.memorySlices, 4);
    assert.equal(threeG.sliceCount, 3);
    const rev2 = profileNamed(H100_80GB, "1g.20gb");
    assert.equal(rev2.memorySlices, 2);
    assert.equal(rev2.defaultComputeProfileId, 7, "H100 1g.20gb's only CI is the REV1 CI profile");
    assert.ok(profileNamed(H100_80GB, "1g.10gb+me").mediaExtensions);
    assert.ok(!profileNamed(H100_80GB, "1g.10gb").mediaExtensions);
  });

  it("lists profiles largest first", () => {
    assert.deepEqual(
      H100_80GB.profiles.map((p) => p.name),
      ["7g.80gb", "4g.40gb", "3g.40gb", "2g.20gb", "1g.20gb", "1g.10gb", "1g.10gb+me"],
    );
  });

  it("rejects geometries it cannot reason about", () => {
    const first = H100_80GB_INPUT.profiles[0];
    assert.ok(first);
    assert.throws(
      () => buildGeometry({ ...H100_80GB_INPUT, profiles: [...H100_80GB_INPUT.profiles, first] }),
      GeometryError,
    );
    assert.throws(
      () => buildGeometry({ ...A30_24GB_INPUT, profiles: [{ ...first, placements: [] }] }),
      /no placements/,
    );
    assert.throws(() => buildGeometry({ ...A30_24GB_INPUT, profiles: [] }), /no MIG profiles/);
  });

  it("finds the free legal placements of a profile", () => {
    const free = 0xff & ~placementMask(0, 4);
    assert.deepEqual(freePlacements(profileNamed(H100_80GB, "3g.40gb"), free), [4]);
    assert.deepEqual(freePlacements(profileNamed(H100_80GB, "1g.10gb"), free), [4, 5, 6]);
    assert.deepEqual(freePlacements(profileNamed(H100_80GB, "4g.40gb"), free), []);
  });
});

describe("slot map", () => {
  it("draws instances over memory slices, three columns a slice", () => {
    const layout = layoutOf(H100_80GB, [
      ["3g.40gb", 0],
      ["2g.20gb", 4],
      ["1g.10gb", 6],
    ]);
    assert.equal(renderSlotMap(H100_80GB, layout.instances), "[3g.40gb    |2g.20|1g|--]");
  });

  it("draws an empty GPU and a whole-GPU instance", () => {
    assert.equal(renderSlotMap(H100_80GB, []), "[--|--|--|--|--|--|--|--]");
    assert.equal(renderSlotMap(A30_24GB, layoutOf(A30_24GB, [["4g.24gb", 0]]).instances), "[4g.24gb    ]");
    const full = renderSlotMap(H100_80GB, layoutOf(H100_80GB, [["7g.80gb", 0]]).instances);
    assert.equal(full.length, 8 * 3 + 1);
  });

  it("flags overlapping input instead of hiding it", () => {
    const layout = layoutOf(H100_80GB, [
      ["3g.40gb", 0],
      ["4g.40gb", 0],
    ]);
    assert.match(renderSlotMap(H100_80GB, layout.instances), /overlapping/);
  });
});
