import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { type AgentEventInit, EventLog } from "../../src/telemetry/event-log.js";

const event = (n: number): AgentEventInit => ({
  kind: "mig",
  atMs: n,
  gpuIndex: 0,
  gpuUuid: "GPU-x",
  message: `event ${n}`,
  detail: { type: "mig", change: String(n) },
});

describe("EventLog", () => {
  it("numbers events from its first sequence number and tells listeners in order", () => {
    const log = new EventLog(4, 1000);
    const heard: number[] = [];
    log.subscribe((e) => heard.push(e.seq));
    assert.equal(log.lastSeq, 999);
    for (let i = 0; i < 3; i++) log.append(event(i));
    assert.deepEqual(heard, [1000, 1001, 1002]);
    assert.equal(log.get(1001)?.message, "event 1");
  });

  it("replays what it holds after a sequence number, and names the gap it no longer holds", () => {
    const log = new EventLog(3, 1);
    for (let i = 0; i < 5; i++) log.append(event(i)); // seq 1..5; holds 3..5
    assert.equal(log.oldestHeldSeq, 3);
    const { events, gap } = log.after(1);
    assert.deepEqual(gap, { from: 2, to: 2 });
    assert.deepEqual(
      events.map((e) => e.seq),
      [3, 4, 5],
    );
    assert.deepEqual(log.after(3), { events: [log.get(4), log.get(5)], gap: undefined });
    assert.deepEqual(log.after(5).events, []);
    assert.deepEqual(log.after(3, 1).events.length, 1);
  });

  it("reports a resume from an earlier run as a gap, even before anything is logged", () => {
    const log = new EventLog(10, 5000);
    assert.deepEqual(log.after(42).gap, { from: 43, to: 4999 });
    log.append(event(0));
    assert.deepEqual(log.after(42), { events: [log.get(5000)], gap: { from: 43, to: 4999 } });
  });

  it("never loses or reorders what it still holds (property)", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 20 }),
        fc.integer({ min: 0, max: 60 }),
        fc.integer({ min: 0, max: 70 }),
        (cap, n, resume) => {
          const log = new EventLog(cap, 1);
          for (let i = 0; i < n; i++) log.append(event(i));
          const { events, gap } = log.after(resume);
          const expectedFirst = Math.max(resume + 1, n - cap + 1, 1);
          const seqs = events.map((e) => e.seq);
          const expected: number[] = [];
          for (let s = expectedFirst; s <= n; s++) expected.push(s);
          assert.deepEqual(seqs, expected);
          if (gap) assert.equal(gap.to + 1, expectedFirst);
        },
      ),
    );
  });
});
