import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { InputError } from "../../src/errors.js";
import {
  AllocationFailedError,
  NoCapacityError,
  validatePlacementRequest,
  WorkloadConflictError,
  WorkloadSizeConflictError,
} from "../../src/scheduler/decisions.js";
import { AgentRefusedError } from "../../src/scheduler/in-process-fleet.js";
import { H100_80GB } from "../mig/geometries.js";
import { dynamicNode, engineFor, occupy, profileRequest, world } from "./helpers.js";

/** A promise the test resolves by hand. */
function gate() {
  let open: () => void = () => {};
  const opened = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { opened, open };
}

const tick = () => new Promise((r) => setImmediate(r));

describe("decisions", () => {
  it("answers a retry with the leases already held, without asking the agent again", async () => {
    const w = world([dynamicNode("n1", H100_80GB)]);
    const engine = engineFor(w);
    let calls = 0;
    w.fleet.hooks.beforeAllocate = () => {
      calls++;
    };
    const r = profileRequest("3g.40gb", { workloadId: "job" });
    const first = await engine.place(r);
    const again = await engine.place(r);
    assert.equal(first.created, true);
    assert.equal(again.created, false);
    assert.equal(again.cudaVisibleDevices, first.cudaVisibleDevices);
    assert.match(first.cudaVisibleDevices, /^MIG-/);
    assert.equal(calls, 1);
  });

  it("gives concurrent requests for one workload id the same answer and one allocation", async () => {
    const w = world([dynamicNode("n1", H100_80GB)]);
    const engine = engineFor(w);
    const g = gate();
    let calls = 0;
    w.fleet.hooks.beforeAllocate = async () => {
      calls++;
      await g.opened;
    };
    const r = profileRequest("1g.10gb", { workloadId: "job" });
    const a = engine.place(r);
    const b = engine.place(r);
    g.open();
    const [ra, rb] = await Promise.all([a, b]);
    assert.deepEqual(ra, rb);
    assert.equal(calls, 1);
    assert.equal(w.fleet.allLeases().length, 1);
  });

  it("never gives the last slice to two concurrent requests", async () => {
    const w = world([dynamicNode("n1", H100_80GB)]);
    occupy(w, "n1", 0, "4g.40gb", 0);
    occupy(w, "n1", 0, "2g.20gb", 4);
    // Only 1g@6 is left.
    const engine = engineFor(w);
    const g = gate();
    w.fleet.hooks.beforeAllocate = () => g.opened;
    const racers = Array.from({ length: 6 }, () => engine.place(profileRequest("1g.10gb")));
    g.open();
    const results = await Promise.allSettled(racers);
    const won = results.filter((r) => r.status === "fulfilled");
    const lost = results.filter((r) => r.status === "rejected");
    assert.equal(won.length, 1);
    assert.ok(lost.every((r) => r.status === "rejected" && r.reason instanceof NoCapacityError));
    assert.equal(w.fleet.leases("n1").filter((l) => l.profileName === "1g.10gb").length, 1);
  });

  it("releases the reservation when the agent refuses, so the slice can be used again", async () => {
    const w = world([dynamicNode("n1", H100_80GB)]);
    const engine = engineFor(w);
    w.fleet.hooks.beforeAllocate = () => {
      throw new AgentRefusedError("INSUFFICIENT_RESOURCES: someone else was quicker");
    };
    await assert.rejects(engine.place(profileRequest("7g.80gb", { workloadId: "a" })), (err: unknown) => {
      assert.ok(err instanceof AllocationFailedError);
      assert.equal(err.code, "TESSERA_ALLOCATION_FAILED");
      assert.deepEqual(err.inDoubt, []);
      assert.match(err.message, /\(INSUFFICIENT_RESOURCES: someone else was quicker\); nothing is held$/);
      return true;
    });
    assert.equal(w.view.leases.size, 0);
    assert.equal(w.view.gpuByUuid.get("GPU-n1-0")?.instanceMask, 0);
    w.fleet.hooks.beforeAllocate = undefined;
    const ok = await engine.place(profileRequest("7g.80gb", { workloadId: "b" }));
    assert.equal(ok.slices[0]?.placement?.start, 0);
  });

  it("holds a slice in doubt when the agent does not answer in time", async () => {
    const w = world([dynamicNode("n1", H100_80GB)]);
    const engine = engineFor(w, undefined, 30);
    w.fleet.hooks.beforeAllocate = (_r, signal) =>
      new Promise((_, reject) => signal.addEventListener("abort", () => reject(signal.reason), { once: true }));
    await assert.rejects(engine.place(profileRequest("7g.80gb", { workloadId: "slow" })), (err: unknown) => {
      assert.ok(err instanceof AllocationFailedError);
      assert.deepEqual(err.inDoubt, ["slow"]);
      return true;
    });
    // The agent may still carry it out: nothing else may take those slices yet.
    assert.equal(w.view.leases.get("slow")?.source, "in-doubt");
    await assert.rejects(engine.place(profileRequest("1g.10gb")), NoCapacityError);
    // Once the agent's snapshots keep not showing it past the overlay TTL, the slices are free.
    w.clock.now += w.view.options.overlayTtlMs + 1;
    w.sync();
    assert.equal(w.view.leases.size, 0);
  });

  it("talks to the agent about one GPU at a time, and about different GPUs at once", async () => {
    const w = world([dynamicNode("n1", H100_80GB, 2)]);
    const engine = engineFor(w);
    const running = new Map<string, number>();
    let maxPerGpu = 0;
    let maxOverall = 0;
    w.fleet.hooks.beforeAllocate = async (r) => {
      const gpu = r.target.kind === "new-instance" ? r.target.gpuUuid : "device";
      running.set(gpu, (running.get(gpu) ?? 0) + 1);
      maxPerGpu = Math.max(maxPerGpu, running.get(gpu) ?? 0);
      maxOverall = Math.max(
        maxOverall,
        [...running.values()].reduce((a, b) => a + b, 0),
      );
      await tick();
      await tick();
      running.set(gpu, (running.get(gpu) ?? 1) - 1);
    };
    // 2 × 4g fill both GPUs' 4g placement; then 3g's go beside them.
    await Promise.all([
      engine.place(profileRequest("4g.40gb")),
      engine.place(profileRequest("4g.40gb")),
      engine.place(profileRequest("3g.40gb")),
      engine.place(profileRequest("3g.40gb")),
    ]);
    assert.equal(maxPerGpu, 1);
    assert.equal(maxOverall, 2);
    assert.equal(w.fleet.allLeases().length, 4);
  });

  it("allocates count > 1 all or nothing: a refused slice undoes the others", async () => {
    const w = world([dynamicNode("n1", H100_80GB, 2)]);
    const engine = engineFor(w);
    w.fleet.hooks.beforeAllocate = (r) => {
      if (r.workloadId === "gang+2") throw new AgentRefusedError("INSUFFICIENT_RESOURCES");
    };
    await assert.rejects(
      engine.place(profileRequest("3g.40gb", { workloadId: "gang", count: 3 })),
      AllocationFailedError,
    );
    assert.deepEqual(w.fleet.allLeases(), []);
    assert.equal(w.view.leases.size, 0);
    w.fleet.hooks.beforeAllocate = undefined;
    const r = await engine.place(profileRequest("3g.40gb", { workloadId: "gang", count: 3 }));
    assert.equal(r.slices.length, 3);
    assert.equal(r.cudaVisibleDevices.split(",").length, 3);
  });

  it("releases every slice of a workload through its agent", async () => {
    const w = world([dynamicNode("n1", H100_80GB, 2)]);
    const engine = engineFor(w);
    await engine.place(profileRequest("3g.40gb", { workloadId: "gang", count: 2 }));
    assert.deepEqual(await engine.release("gang"), { released: true, slices: 2 });
    assert.deepEqual(w.fleet.allLeases(), []);
    assert.equal(w.view.leases.size, 0);
    assert.deepEqual(await engine.release("gang"), { released: false, slices: 0 });
  });

  it("refuses a workload id another tenant holds", async () => {
    const w = world([dynamicNode("n1", H100_80GB)]);
    const engine = engineFor(w);
    await engine.place(profileRequest("1g.10gb", { workloadId: "job", tenant: "a" }));
    await assert.rejects(
      engine.place(profileRequest("1g.10gb", { workloadId: "job", tenant: "b" })),
      WorkloadConflictError,
    );
    await assert.rejects(engine.release("job", "b"), WorkloadConflictError);
  });

  it("completes a count > 1 placement a scheduler crash interrupted: gives back the slices, places all", async () => {
    const w = world([dynamicNode("n1", H100_80GB, 2)]);
    // The previous scheduler got one of three slices allocated before it died.
    w.fleet.allocateNow({
      nodeId: "n1",
      address: null,
      workloadId: "gang+0",
      tenant: "team-a",
      target: { kind: "new-instance", gpuUuid: "GPU-n1-1", profile: "1g.10gb", placementStart: 6 },
    });
    w.sync();
    const engine = engineFor(w);
    const r = await engine.place(profileRequest("2g.20gb", { workloadId: "gang", count: 3 }));
    assert.equal(r.created, true);
    assert.deepEqual(
      r.slices.map((s) => [s.workloadId, s.profileName]),
      [
        ["gang+0", "2g.20gb"],
        ["gang+1", "2g.20gb"],
        ["gang+2", "2g.20gb"],
      ],
    );
    assert.deepEqual(
      w.fleet
        .allLeases()
        .map((l) => `${l.workloadId}:${l.profileName}`)
        .sort(),
      ["gang+0:2g.20gb", "gang+1:2g.20gb", "gang+2:2g.20gb"],
    );
  });

  it("refuses a workload id that holds another number of slices than asked", async () => {
    const w = world([dynamicNode("n1", H100_80GB)]);
    const engine = engineFor(w);
    await engine.place(profileRequest("1g.10gb", { workloadId: "solo" }));
    await assert.rejects(
      engine.place(profileRequest("1g.10gb", { workloadId: "solo", count: 2 })),
      WorkloadSizeConflictError,
    );
    await engine.place(profileRequest("1g.10gb", { workloadId: "pair", count: 2 }));
    await assert.rejects(engine.place(profileRequest("1g.10gb", { workloadId: "pair" })), /holds 2 slices/);
  });

  it("says why nothing fits", async () => {
    const w = world([dynamicNode("n1", H100_80GB, 1, { simulated: true })]);
    await assert.rejects(engineFor(w).place(profileRequest("1g.10gb")), (err: unknown) => {
      assert.ok(err instanceof NoCapacityError);
      assert.equal(err.code, "TESSERA_NO_CAPACITY");
      assert.equal(err.message, "no GPU can take 1g.10gb: 1 node-simulated");
      return true;
    });
  });
});

describe("request validation", () => {
  const table: [string, Parameters<typeof profileRequest>[1], RegExp][] = [
    ["empty workload id", { workloadId: "" }, /^workload_id: must not be empty/],
    ["slice separator", { workloadId: "a+1" }, /^workload_id: must not contain '\+'/],
    ["too long", { workloadId: "w".repeat(121) }, /^workload_id: longer than 120 characters/],
    ["no tenant", { tenant: "" }, /^tenant:/],
    ["count 0", { count: 0 }, /^count: must be an integer from 1 to 64, got 0/],
    [
      "compute fraction above 1",
      { target: { kind: "shape", memoryMiB: 1, computeFraction: 1.5 } },
      /^shape\.compute_fraction: must be within 0…1, got 1\.5/,
    ],
    ["empty shape", { target: { kind: "shape", memoryMiB: 0, computeFraction: 0 } }, /^shape: asks for neither/],
  ];
  for (const [name, over, message] of table) {
    it(`rejects ${name}, naming the field`, () => {
      assert.throws(
        () => validatePlacementRequest(profileRequest("1g.10gb", over)),
        (err: unknown) => err instanceof InputError && message.test(err.message),
      );
    });
  }
});
