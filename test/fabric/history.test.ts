import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { CounterSample } from "../../src/fabric/counters.js";
import {
  advancePortHistory,
  downEventsInWindow,
  type HistoryPolicy,
  incrementsInWindow,
  type PortHistory,
} from "../../src/fabric/history.js";

const BOOT = "3e2f1b5c-8a4d-4f6e-9b7a-1c2d3e4f5a6b";
const POLICY: HistoryPolicy = {
  trackedCounters: new Set(["counters/symbol_error", "counters/link_downed"]),
  retainMs: 3_600_000,
  maxEntries: 4,
};

function sample(atMs: number, symbolErrors: bigint, linkDowned = 1n, bootId = BOOT): CounterSample {
  return {
    atMs,
    bootId,
    extended: true,
    values: {
      "counters/symbol_error": symbolErrors,
      "counters/link_downed": linkDowned,
      "counters/port_xmit_data": 7n,
    },
  };
}

/** Feeds samples in order; `up` per sample (default up). */
function feed(samples: CounterSample[], up: (boolean | undefined)[] = [], policy = POLICY) {
  let history: PortHistory | undefined;
  let step: ReturnType<typeof advancePortHistory> | undefined;
  samples.forEach((s, i) => {
    step = advancePortHistory(history, s, i < up.length ? up[i] : true, policy);
    history = step.history;
  });
  if (!step) throw new Error("no samples");
  return step;
}

describe("advancePortHistory", () => {
  it("remembers only intervals in which a tracked counter rose", () => {
    const { history } = feed([sample(0, 0n), sample(1000, 0n), sample(2000, 5n), sample(3000, 5n)]);
    assert.deepEqual(history.increments, [{ atMs: 2000, intervalMs: 1000, deltas: { "counters/symbol_error": 5 } }]);
  });

  it("drops entries older than the retention and bounds the list", () => {
    const samples = [sample(0, 0n)];
    for (let i = 1; i <= 6; i++) samples.push(sample(i * 1000, BigInt(i)));
    samples.push(sample(3_604_000, 6n));
    const { history } = feed(samples);
    assert.deepEqual(
      history.increments.map((i) => i.atMs),
      [5000, 6000],
    );
    const bounded = feed(samples.slice(0, 7)).history;
    assert.equal(bounded.increments.length, POLICY.maxEntries);
  });

  it("records up/down transitions, not repeated states", () => {
    const { history } = feed(
      [sample(0, 0n), sample(1000, 0n), sample(2000, 0n), sample(3000, 0n), sample(4000, 0n)],
      [true, false, false, true, undefined],
    );
    assert.deepEqual(history.transitions, [
      { atMs: 1000, up: false },
      { atMs: 3000, up: true },
    ]);
  });

  it("keeps time-based history across a reboot but computes no delta for it", () => {
    const step = feed([
      sample(0, 0n),
      sample(1000, 50n),
      sample(600_000, 0n, 1n, "0b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9"),
    ]);
    assert.equal(step.change.kind, "baseline");
    assert.equal(step.history.increments.length, 1);
  });
});

describe("incrementsInWindow", () => {
  it("sums remembered increments inside the window", () => {
    const step = feed([sample(0, 0n), sample(60_000, 60n), sample(120_000, 100n), sample(180_000, 100n)]);
    assert.equal(incrementsInWindow(step.history, step.change, "counters/symbol_error", 3_600_000, 180_000), 100);
    assert.equal(incrementsInWindow(step.history, step.change, "counters/symbol_error", 90_000, 180_000), 40);
  });

  it("scales the interval's average to a window shorter than the interval", () => {
    // 600 errors in 60 s is 10 per second on average.
    const step = feed([sample(0, 0n), sample(60_000, 600n)]);
    assert.equal(incrementsInWindow(step.history, step.change, "counters/symbol_error", 1000, 60_000), 10);
  });
});

describe("downEventsInWindow", () => {
  it("counts link_downed increments even when no down state was seen", () => {
    const step = feed([sample(0, 0n, 1n), sample(300_000, 0n, 4n)]);
    assert.equal(downEventsInWindow(step.history, 12 * 3_600_000, 300_000), 3);
  });

  it("counts observed downs when link_downed did not move (e.g. a port taken down by the SM)", () => {
    const ups = [true, false, true, false, true];
    const step = feed(
      ups.map((_, i) => sample(i * 1000, 0n)),
      ups,
    );
    assert.equal(downEventsInWindow(step.history, 60_000, 4000), 2);
    assert.equal(downEventsInWindow(step.history, 1500, 4000), 1);
  });
});
