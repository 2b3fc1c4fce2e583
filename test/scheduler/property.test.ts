// Property tests over random clusters (every reference geometry, static and
// dynamic nodes, pre-existing leased and idle instances, unhealthy GPUs) and
// random sequences of placements and releases. The in-process agents check
// every allocation against the geometry independently of placement, and
// after every step the invariants are checked on the agents' ground truth.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { placementMask } from "../../src/mig/geometry.js";
import type { GpuGeometry, GpuInstanceState } from "../../src/mig/types.js";
import {
  confirmSlice,
  type GpuState,
  leasesOfGroup,
  removeLease,
  reserveSlices,
  sliceWorkloadId,
} from "../../src/scheduler/cluster.js";
import { targetFor } from "../../src/scheduler/demand.js";
import { fixedWeights } from "../../src/scheduler/demand-histogram.js";
import type { FleetNodeSpec, InProcessFleet } from "../../src/scheduler/in-process-fleet.js";
import {
  decide,
  explain,
  NO_CONSTRAINTS,
  type PlacementPolicy,
  type PlacementRequest,
} from "../../src/scheduler/placement.js";
import { H100_80GB, PRESETS } from "../mig/geometries.js";
import { type World, world } from "./helpers.js";

/** A layout the driver would accept, from random create attempts. */
function reachable(geometry: GpuGeometry, attempts: readonly [number, number][], uuid: (i: number) => string) {
  const out: GpuInstanceState[] = [];
  let used = 0;
  let compute = 0;
  let media = false;
  for (const [pi, si] of attempts) {
    const p = geometry.profiles[pi % geometry.profiles.length];
    if (!p) continue;
    const start = p.placements[si % p.placements.length] ?? 0;
    const mask = placementMask(start, p.memorySlices);
    if ((mask & used) !== 0 || (p.mediaExtensions && media)) continue;
    if (out.filter((gi) => gi.profileId === p.id).length >= p.maxInstances) continue;
    if (compute + p.sliceCount > geometry.computeSliceCount) continue;
    used |= mask;
    compute += p.sliceCount;
    media ||= p.mediaExtensions;
    out.push({
      giId: out.length + 1,
      profileId: p.id,
      placement: { start, size: p.memorySlices },
      computeInstances: [{ ciId: 0, profileId: p.defaultComputeProfileId, uuid: uuid(out.length), processIds: [] }],
    });
  }
  return out;
}

const nodeArb = fc.record({
  preset: fc.nat(PRESETS.length - 1),
  gpus: fc.integer({ min: 1, max: 2 }),
  dynamic: fc.boolean(),
  simulated: fc.integer({ min: 0, max: 4 }).map((x) => x === 0),
  layout: fc.array(fc.tuple(fc.nat(20), fc.nat(20)), { maxLength: 5 }),
});

const NAMES = [...new Set(PRESETS.flatMap((p) => p.geometry.profiles.map((x) => x.name)))];

const opArb = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant("place" as const),
      named: fc.boolean(),
      name: fc.constantFrom(...NAMES),
      memoryFraction: fc.double({ min: 0, max: 1, noNaN: true }),
      computeFraction: fc.double({ min: 0.01, max: 1, noNaN: true }),
      count: fc.integer({ min: 1, max: 3 }),
      allowSimulated: fc.integer({ min: 0, max: 3 }).map((x) => x > 0),
      policy: fc.constantFrom<PlacementPolicy>("fragmentation", "fragmentation", "best-fit", "first-fit"),
      sync: fc.boolean(),
    }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("release" as const), pick: fc.nat() }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant("health" as const),
      pick: fc.nat(),
      state: fc.constantFrom("healthy" as const, "degraded" as const, "unhealthy" as const),
    }),
  },
);

/** Ground truth at the agents: legal, non-overlapping, within limits. */
function checkFleet(fleet: InProcessFleet): void {
  for (const id of fleet.nodeIds()) {
    const snap = fleet.snapshot(id);
    for (const gpu of snap.node.gpus) {
      const g = gpu.geometry;
      assert.ok(g);
      let used = 0;
      let compute = 0;
      let media = 0;
      const counts = new Map<number, number>();
      for (const gi of gpu.instances) {
        const p = g.profiles.find((x) => x.id === gi.profileId);
        assert.ok(p, "known profile");
        assert.ok(p.placements.includes(gi.placement.start), "legal start");
        const m = placementMask(gi.placement.start, gi.placement.size);
        assert.equal(used & m, 0, `${gpu.uuid}: overlapping instances`);
        used |= m;
        compute += p.sliceCount;
        if (p.mediaExtensions) media++;
        counts.set(p.id, (counts.get(p.id) ?? 0) + 1);
        assert.ok((counts.get(p.id) ?? 0) <= p.maxInstances, `${p.name}: over its instance limit`);
      }
      assert.ok(compute <= g.computeSliceCount, "compute slices");
      assert.ok(media <= 1, "one +me instance per GPU");
    }
    const devices = snap.leases.map((l) => l.migUuid);
    assert.equal(new Set(devices).size, devices.length, "a device leased twice");
  }
}

/** Every GPU is in the index sets its state calls for, and in no other. */
function checkIndex(w: World): void {
  const where = new Map<GpuState, string[]>();
  const note = (gpu: GpuState, at: string) => where.set(gpu, [...(where.get(gpu) ?? []), at]);
  for (const [t, byKey] of w.view.buckets) {
    for (const [key, set] of byKey) for (const gpu of set) note(gpu, `bucket ${t.geometry.model} ${key}`);
  }
  for (const [t, byKey] of w.view.staticDevices) {
    for (const [key, set] of byKey) for (const gpu of set) note(gpu, `static ${t.geometry.model} ${key}`);
  }
  for (const gpu of w.view.irregular) note(gpu, "irregular");
  for (const gpu of w.view.gpuByUuid.values()) {
    const t = gpu.tables;
    const serves = t !== null && gpu.migEnabled && !gpu.lost && gpu.health.state !== "unhealthy" && !gpu.wholeLeasedBy;
    const free = gpu.slots.filter((s) => s.leasedBy === null && !s.busy && s.migUuid !== null && s.profileIndex >= 0);
    let expected: string[] = [];
    if (serves && t) {
      if (!gpu.node.dynamicMig) {
        const profiles = [...new Set(free.map((s) => s.profileIndex))].sort((a, b) => a - b);
        const slices = free.reduce((a, s) => a + s.size, 0);
        expected = profiles.map((p) => `static ${t.geometry.model} ${p * 32 + slices}`);
      } else if (free.length === 0 && t.tabulated) {
        const key = ((gpu.meTaken ? 1 : 0) << t.memorySliceCount) | (t.fullMask & ~gpu.instanceMask);
        expected = [`bucket ${t.geometry.model} ${key}`];
      } else {
        expected = ["irregular"];
      }
    }
    assert.deepEqual((where.get(gpu) ?? []).sort(), expected.sort(), gpu.uuid);
  }
}

describe("placement properties", () => {
  it("never overlaps, never passes instance limits or the +me rule, and Explain agrees with every decision", () => {
    fc.assert(
      fc.property(
        fc.array(nodeArb, { minLength: 1, maxLength: 3 }),
        fc.array(opArb, { minLength: 5, maxLength: 30 }),
        fc.record({ w1: fc.nat(4), w3: fc.nat(4), w7: fc.nat(4) }),
        (nodes, ops, mix) => {
          const specs: FleetNodeSpec[] = nodes.map((n, i) => {
            const geometry = (PRESETS[n.preset] ?? PRESETS[0])?.geometry as GpuGeometry;
            return {
              nodeId: `n${i}`,
              geometry,
              gpuCount: n.gpus,
              dynamicMig: n.dynamic,
              simulated: n.simulated,
              layout: (g, uuid) => reachable(geometry, g === 0 ? n.layout : n.layout.slice(1), uuid),
            };
          });
          const w = world(specs);
          const weights = fixedWeights({ "1g.1m": mix.w1, "3g.4m": mix.w3, "7g.8m": mix.w7 }, 1);
          const live: { id: string; count: number }[] = [];
          let seq = 0;
          for (const op of ops) {
            w.clock.now += 10;
            if (op.kind === "health") {
              const ids = w.fleet.nodeIds();
              const nodeId = ids[op.pick % ids.length] as string;
              w.fleet.setHealth(nodeId, op.pick % 2, { state: op.state, reasons: [op.state] });
              w.sync();
            } else if (op.kind === "release") {
              const victim = live.splice(op.pick % Math.max(1, live.length), 1)[0];
              if (victim) {
                for (const rec of leasesOfGroup(w.view, victim.id)) {
                  w.fleet.releaseNow({ nodeId: rec.nodeId, address: null, workloadId: rec.workloadId });
                  removeLease(w.view, rec.workloadId);
                }
              }
            } else {
              seq++;
              const request: PlacementRequest = {
                workloadId: `p${seq}`,
                tenant: "t",
                target: op.named
                  ? { kind: "profile", name: op.name }
                  : targetFor(
                      { kind: "shape", computeFraction: op.computeFraction, memoryFraction: op.memoryFraction },
                      H100_80GB,
                    ),
                count: op.count,
                constraints: NO_CONSTRAINTS,
                priority: 0,
                allowSimulated: op.allowSimulated,
              };
              const ctx = { nowMs: w.clock.now, weights, policy: op.policy };
              const out = decide(w.view, request, ctx);
              const e = explain(w.view, request, ctx);
              assert.deepEqual(out.ok ? out.decision : null, e.decision, "Explain's best is the decision");
              if (out.ok) {
                for (const s of out.decision.slices) {
                  const node = w.view.nodes.get(s.nodeId);
                  const gpu = w.view.gpuByUuid.get(s.gpuUuid);
                  assert.ok(node && gpu);
                  assert.ok(op.allowSimulated || !node.simulated, "simulated node refused");
                  assert.notEqual(gpu.health.state, "unhealthy");
                  if (s.action === "carve") assert.ok(node.dynamicMig, "static nodes are never carved");
                }
                assert.equal(new Set(out.decision.slices.map((s) => s.nodeId)).size, 1, "one node");
                // Reserve as the engine does, ask the agent (which refuses anything illegal), confirm.
                reserveSlices(w.view, request, out.decision.slices, w.clock.now);
                out.decision.slices.forEach((s, i) => {
                  const id = sliceWorkloadId(request.workloadId, i, request.count);
                  const r = w.fleet.allocateNow({
                    nodeId: s.nodeId,
                    address: null,
                    workloadId: id,
                    tenant: "t",
                    target:
                      s.migUuid !== null
                        ? { kind: "device", deviceUuid: s.migUuid }
                        : {
                            kind: "new-instance",
                            gpuUuid: s.gpuUuid,
                            profile: s.profileName,
                            placementStart: s.placement.start,
                          },
                  });
                  confirmSlice(w.view, id, r, w.clock.now);
                });
                live.push({ id: request.workloadId, count: request.count });
              }
              // Sometimes the agents' snapshots lag behind the scheduler's own reservations.
              if (op.sync) w.sync();
            }
            checkFleet(w.fleet);
            checkIndex(w);
          }
          w.sync();
          checkIndex(w);
          // The view agrees with the agents once snapshots are in.
          const agents = w.fleet
            .allLeases()
            .map((l) => l.workloadId)
            .sort();
          assert.deepEqual([...w.view.leases.keys()].sort(), agents);
        },
      ),
      { numRuns: 200 },
    );
  });
});
