import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import {
  type CounterSample,
  counterWidthBits,
  diffCounters,
  isSaturated,
  sampleFromPort,
  trafficFromChange,
} from "../../src/fabric/counters.js";
import { ibPort } from "./helpers.js";

const BOOT = "3e2f1b5c-8a4d-4f6e-9b7a-1c2d3e4f5a6b";
const OTHER_BOOT = "0b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9";

function sample(atMs: number, values: Record<string, bigint>, bootId: string | undefined = BOOT, extended = true) {
  return { atMs, bootId, extended, values } satisfies CounterSample;
}

describe("counterWidthBits", () => {
  const cases: [string, boolean, number][] = [
    ["counters/symbol_error", true, 16],
    ["counters/link_downed", true, 8],
    ["counters/link_error_recovery", false, 8],
    ["counters/local_link_integrity_errors", true, 4],
    ["counters/excessive_buffer_overrun_errors", true, 4],
    ["counters/port_xmit_wait", true, 32],
    ["counters/port_xmit_data", true, 64],
    ["counters/port_xmit_data", false, 32],
    ["counters/port_rcv_packets", false, 32],
    ["counters/unicast_xmit_packets", true, 64],
    ["hw_counters/rnr_nak_retry_err", false, 64],
  ];
  for (const [key, extended, bits] of cases) {
    it(`${key} (${extended ? "extended" : "32-bit set"}) is ${bits} bits`, () => {
      assert.equal(counterWidthBits(key, extended), bits);
    });
  }
});

describe("isSaturated", () => {
  const cases: [bigint, number, boolean][] = [
    [65535n, 16, true],
    [65534n, 16, false],
    [255n, 8, true],
    [15n, 4, true],
    [14n, 4, false],
    [4294967295n, 32, true],
    [18446744073709551615n, 64, false],
  ];
  for (const [value, bits, expected] of cases) {
    it(`${value} in ${bits} bits → ${expected}`, () => assert.equal(isSaturated(value, bits), expected));
  }
});

describe("diffCounters", () => {
  it("has no rates for the first sample", () => {
    const c = diffCounters(undefined, sample(1000, { "counters/symbol_error": 3n }));
    assert.deepEqual(c, { kind: "baseline", reason: "first-sample", saturated: [] });
  });

  it("computes deltas and per-second rates over the interval", () => {
    const c = diffCounters(
      sample(0, { "counters/symbol_error": 10n, "counters/port_xmit_data": 0n }),
      sample(10_000, { "counters/symbol_error": 110n, "counters/port_xmit_data": 12_500_000_000n }),
    );
    assert.equal(c.kind, "interval");
    if (c.kind !== "interval") return;
    assert.equal(c.intervalMs, 10_000);
    assert.equal(c.deltas["counters/symbol_error"], 100n);
    assert.equal(c.ratesPerSec["counters/symbol_error"], 10);
    assert.deepEqual(c.resets, []);
  });

  it("treats a counter that went down as a reset, counting its current value", () => {
    const c = diffCounters(
      sample(0, { "counters/symbol_error": 500n, "counters/link_downed": 3n }),
      sample(60_000, { "counters/symbol_error": 4n, "counters/link_downed": 3n }),
    );
    assert.equal(c.kind, "interval");
    if (c.kind !== "interval") return;
    assert.deepEqual(c.resets, ["counters/symbol_error"]);
    assert.equal(c.deltas["counters/symbol_error"], 4n);
    assert.equal(c.deltas["counters/link_downed"], 0n);
  });

  it("re-baselines on a new boot id instead of calling it a reset", () => {
    const c = diffCounters(
      sample(0, { "counters/symbol_error": 500n }),
      sample(600_000, { "counters/symbol_error": 0n }, OTHER_BOOT),
    );
    assert.deepEqual(c, { kind: "baseline", reason: "reboot", saturated: [] });
  });

  it("without a boot id on either side, a drop is still a reset (the safe reading)", () => {
    const c = diffCounters(
      sample(0, { "counters/symbol_error": 5n }),
      sample(1000, { "counters/symbol_error": 1n }, undefined),
    );
    assert.equal(c.kind, "interval");
    if (c.kind === "interval") assert.deepEqual(c.resets, ["counters/symbol_error"]);
  });

  it("re-baselines when the wall clock went backwards", () => {
    const c = diffCounters(sample(5000, {}), sample(4000, {}));
    assert.deepEqual(c, { kind: "baseline", reason: "clock-went-backwards", saturated: [] });
  });

  it("reports saturated narrow counters, also on a baseline", () => {
    const values = {
      "counters/symbol_error": 65535n,
      "counters/link_downed": 255n,
      "counters/port_xmit_wait": 4294967295n,
      "counters/port_xmit_data": 4294967295n,
      "hw_counters/out_of_sequence": 4294967295n,
    };
    const base = diffCounters(undefined, sample(0, values, BOOT, true));
    assert.deepEqual(base.saturated.sort(), [
      "counters/link_downed",
      "counters/port_xmit_wait",
      "counters/symbol_error",
    ]);
    const narrow = diffCounters(undefined, sample(0, values, BOOT, false));
    assert.ok(narrow.saturated.includes("counters/port_xmit_data"), "32-bit data counters saturate without ext width");
  });

  it("never reports a negative delta and never more than the current value on reset", () => {
    fc.assert(
      fc.property(
        fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
        fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
        (a, b) => {
          const c = diffCounters(sample(0, { "counters/x": a }), sample(1000, { "counters/x": b }));
          if (c.kind !== "interval") return false;
          const d = c.deltas["counters/x"] as bigint;
          return d >= 0n && (b >= a ? d === b - a : d === b && c.resets.includes("counters/x"));
        },
      ),
    );
  });
});

describe("sampleFromPort and traffic", () => {
  it("skips N/A counters and keys PMA and hw counters apart", () => {
    const s = sampleFromPort(
      ibPort({ counters: { symbol_error: 2n, port_rcv_errors: undefined }, hwCounters: { rnr_nak_retry_err: 1n } }),
      5,
      BOOT,
    );
    assert.deepEqual(s.values, { "counters/symbol_error": 2n, "hw_counters/rnr_nak_retry_err": 1n });
  });

  it("converts 4-octet data words to Gb/s", () => {
    // 400 Gb/s for 1 s = 5e10 bytes = 1.25e10 words.
    const c = diffCounters(
      sample(0, { "counters/port_xmit_data": 0n, "counters/port_rcv_data": 0n }),
      sample(1000, { "counters/port_xmit_data": 12_500_000_000n, "counters/port_rcv_data": 6_250_000_000n }),
    );
    assert.deepEqual(trafficFromChange(c), { xmitGbps: 400, rcvGbps: 200 });
  });
});
