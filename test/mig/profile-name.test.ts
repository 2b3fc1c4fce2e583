import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import {
  formatPinnedProfileName,
  formatProfileName,
  migMemoryGB,
  parsePinnedProfileName,
  parseProfileName,
  profileNamesEqual,
} from "../../src/mig/profile-name.js";
import { A30_24GB, A100_40GB, A100_80GB, H100_80GB, H200_141GB } from "./geometries.js";

describe("profile names", () => {
  it("derives the names NVIDIA's tools print on every reference GPU", () => {
    const names = (g: typeof H100_80GB) => g.profiles.map((p) => p.name).sort();
    assert.deepEqual(names(H100_80GB), [
      "1g.10gb",
      "1g.10gb+me",
      "1g.20gb",
      "2g.20gb",
      "3g.40gb",
      "4g.40gb",
      "7g.80gb",
    ]);
    assert.deepEqual(names(A100_40GB), ["1g.10gb", "1g.5gb", "1g.5gb+me", "2g.10gb", "3g.20gb", "4g.20gb", "7g.40gb"]);
    assert.deepEqual(names(A100_80GB), [
      "1g.10gb",
      "1g.10gb+me",
      "1g.20gb",
      "2g.20gb",
      "3g.40gb",
      "4g.40gb",
      "7g.80gb",
    ]);
    assert.deepEqual(names(H200_141GB), [
      "1g.18gb",
      "1g.18gb+me",
      "1g.35gb",
      "2g.35gb",
      "3g.71gb",
      "4g.71gb",
      "7g.141gb",
    ]);
    assert.deepEqual(names(A30_24GB), ["1g.6gb", "1g.6gb+me", "2g.12gb", "2g.12gb+me", "4g.24gb"]);
  });

  it("names compute instances as <c>c.<g>g.<gb>gb and the full-size one as its GPU instance", () => {
    const threeG = H100_80GB.profiles.find((p) => p.name === "3g.40gb");
    assert.deepEqual(
      threeG?.computeProfiles.map((c) => c.name),
      ["3g.40gb", "2c.3g.40gb", "1c.3g.40gb"],
    );
    const twoGme = A30_24GB.profiles.find((p) => p.name === "2g.12gb+me");
    assert.deepEqual(
      twoGme?.computeProfiles.map((c) => c.name),
      ["2g.12gb+me", "1c.2g.12gb+me"],
    );
  });

  it("rounds memory with go-nvlib's formula (eighths of the device, device rounded up to GiB)", () => {
    // H200: 141 GiB device, 4/8 of it is 70.5 GB, which Go's math.Round takes to 71.
    assert.equal(migMemoryGB(71680, 143771), 71);
    assert.equal(migMemoryGB(4864, 40960), 5);
    // A30 has 4 memory slices but names still count eighths of the device.
    assert.equal(migMemoryGB(5952, 24576), 6);
  });

  it("parses every form mig-parted accepts", () => {
    const ok = ["1g.5gb", "1g.10gb+me", "1c.3g.40gb", "1g.24gb+me.all", "1g.24gb-me", "2g.48gb+gfx"];
    for (const s of ok) {
      const parsed = parseProfileName(s);
      assert.ok(parsed.ok, s);
      assert.equal(formatProfileName(parsed.value), s);
    }
    // A full-size compute instance may be spelled with its c; the canonical name drops it.
    const full = parseProfileName("1c.1g.5gb+me");
    assert.ok(full.ok);
    assert.equal(formatProfileName(full.value), "1g.5gb+me");
  });

  it("rejects malformed strings and says what the grammar is", () => {
    const bad = [
      "",
      "1g",
      "1g.5",
      "g.5gb",
      "1g.5gb+",
      "1g.5gb+me,me",
      "1g.5gb+me-x",
      "4c.3g.40gb",
      "0g.5gb",
      "1g.5gb+1x",
      "1x.1g.5gb",
    ];
    for (const s of bad) {
      const parsed = parseProfileName(s);
      assert.equal(parsed.ok, false, s);
      if (!parsed.ok) assert.match(parsed.error, /expected \[<c>c\.\]<g>g\.<gb>gb/);
    }
  });

  it("reads Tessera's @start suffix", () => {
    const parsed = parsePinnedProfileName("3g.40gb@4");
    assert.ok(parsed.ok);
    assert.equal(parsed.value.start, 4);
    assert.equal(formatPinnedProfileName(parsed.value), "3g.40gb@4");
    assert.equal(parsePinnedProfileName("3g.40gb@x").ok, false);
    assert.equal(parsePinnedProfileName("3g.40gb@").ok, false);
    const me = parsePinnedProfileName("1g.10gb+me@6");
    assert.ok(me.ok);
    assert.deepEqual(me.value.profile.attributes, ["me"]);
  });

  it("matches attribute sets regardless of order", () => {
    const a = parseProfileName("1g.5gb+me,gfx");
    const b = parseProfileName("1g.5gb+gfx,me");
    assert.ok(a.ok && b.ok);
    assert.ok(profileNamesEqual(a.value, b.value));
  });

  it("round-trips any well-formed name (property)", () => {
    const attr = fc.stringMatching(/^[a-z][a-z0-9]{0,3}$/);
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 8 }),
        fc.integer({ min: 0, max: 7 }),
        fc.integer({ min: 1, max: 200 }),
        fc.uniqueArray(attr, { maxLength: 2 }),
        fc.boolean(),
        fc.option(fc.integer({ min: 0, max: 7 }), { nil: null }),
        (g, cLess, gb, attrs, negative, start) => {
          const c = Math.max(1, g - cLess);
          const name = {
            computeSlices: c,
            gpuSlices: g,
            memoryGB: gb,
            attributes: negative ? [] : attrs,
            negativeAttributes: negative ? attrs : [],
          };
          const text = formatPinnedProfileName({ profile: name, start });
          const parsed = parsePinnedProfileName(text);
          assert.ok(parsed.ok, text);
          assert.deepEqual(parsed.value, { profile: name, start });
        },
      ),
    );
  });
});
