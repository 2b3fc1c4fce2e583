import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  applyLeaseEvent,
  applyNodeSnapshot,
  applyXid,
  confirmSlice,
  createClusterView,
  destroyingOn,
  expiredNodes,
  leasesOfGroup,
  nodeAvailable,
  orderedGpus,
  registerNode,
  removeLease,
  reserveSlices,
  tenantUsage,
} from "../../src/scheduler/cluster.js";
import { uniformWeights } from "../../src/scheduler/demand-histogram.js";
import { describeCluster } from "../../src/scheduler/describe.js";
import { decide } from "../../src/scheduler/placement.js";
import { geometryFromReport } from "../../src/scheduler/profiles.js";
import { A30_24GB, H100_80GB, PRESETS, profileNamed } from "../mig/geometries.js";
import { dynamicNode, engineFor, occupy, profileRequest, staticNode, world } from "./helpers.js";

function reserve3g(w: ReturnType<typeof world>, workloadId: string, start = 4) {
  const p = profileNamed(H100_80GB, "3g.40gb");
  return reserveSlices(
    w.view,
    { workloadId, tenant: "team-a" },
    [
      {
        gpuUuid: "GPU-n1-0",
        profileId: p.id,
        profileName: p.name,
        placement: { start, size: 4 },
        migUuid: null,
        gpuInstanceId: null,
        computeInstanceId: null,
      },
    ],
    w.clock.now,
  );
}

describe("cluster view", () => {
  it("builds GPUs, instances, leases and tenant usage from a snapshot", () => {
    const w = world([
      staticNode(
        "n1",
        H100_80GB,
        [
          ["3g.40gb", 4],
          ["2g.20gb", 2],
        ],
        2,
      ),
    ]);
    w.fleet.allocateNow({
      nodeId: "n1",
      address: null,
      workloadId: "job-1",
      tenant: "team-a",
      target: { kind: "device", deviceUuid: "MIG-n1-1-init0" },
    });
    w.sync();
    assert.equal(orderedGpus(w.view).length, 2);
    const rec = w.view.leases.get("job-1");
    assert.equal(rec?.source, "agent");
    assert.equal(rec?.gpuUuid, "GPU-n1-1");
    assert.deepEqual(rec?.placement, { start: 4, size: 4 });
    assert.deepEqual(tenantUsage(w.view, "team-a"), { computeSlices: 3, memorySlices: 4 });
    const gpu = w.view.gpuByUuid.get("GPU-n1-1");
    assert.equal(gpu?.freeDevices, 1, "the 2g is still free");
    const node = w.view.nodes.get("n1");
    assert.equal(node?.freeSlices, 2 + 2 + 4, "free device slices over both GPUs");
  });

  it("keeps a pending reservation across snapshots that do not show it yet", () => {
    const w = world([dynamicNode("n1", H100_80GB)]);
    reserve3g(w, "job-1");
    w.sync();
    assert.equal(w.view.leases.get("job-1")?.source, "pending");
    // The reserved slices are not offered again.
    const out = decide(w.view, profileRequest("3g.40gb"), w.ctx());
    assert.ok(out.ok);
    assert.equal(out.decision.slices[0]?.placement.start, 0);
  });

  it("adopts a reservation once the agent's snapshot shows its lease", () => {
    const w = world([dynamicNode("n1", H100_80GB)]);
    reserve3g(w, "job-1");
    w.fleet.allocateNow({
      nodeId: "n1",
      address: null,
      workloadId: "job-1",
      tenant: "team-a",
      target: { kind: "new-instance", gpuUuid: "GPU-n1-0", profile: "3g.40gb", placementStart: 4 },
    });
    w.sync();
    const rec = w.view.leases.get("job-1");
    assert.equal(rec?.source, "agent");
    assert.equal(w.view.gpuByUuid.get("GPU-n1-0")?.slots.length, 1, "one instance, not a reservation beside it");
    assert.deepEqual(tenantUsage(w.view, "team-a"), { computeSlices: 3, memorySlices: 4 });
  });

  it("holds a confirmed allocation through stale snapshots until the overlay TTL", () => {
    const w = world([dynamicNode("n1", H100_80GB)]);
    reserve3g(w, "job-1");
    confirmSlice(
      w.view,
      "job-1",
      {
        migUuid: "MIG-x",
        gpuInstanceId: 2,
        computeInstanceId: 0,
        placement: null,
        createdAtMs: 0,
        instanceCreated: true,
      },
      w.clock.now,
    );
    w.sync(); // stale: the fleet never saw this allocation
    assert.equal(w.view.leases.get("job-1")?.source, "confirmed");
    assert.equal(w.view.gpuByUuid.get("GPU-n1-0")?.instanceMask, 0xf0);
    w.clock.now += w.view.options.overlayTtlMs + 1;
    w.sync();
    assert.equal(w.view.leases.get("job-1"), undefined);
    assert.equal(w.view.gpuByUuid.get("GPU-n1-0")?.instanceMask, 0);
    assert.deepEqual(tenantUsage(w.view, "team-a"), { computeSlices: 0, memorySlices: 0 });
  });

  it("marks a node that stops renewing unavailable, and keeps reporting its leases", () => {
    const w = world([dynamicNode("n1", H100_80GB)], { leaseTtlMs: 10_000 });
    occupy(w, "n1", 0, "2g.20gb", 0, "team-b");
    w.clock.now += 10_001;
    const node = w.view.nodes.get("n1");
    assert.ok(node);
    assert.equal(nodeAvailable(node, w.clock.now), false);
    assert.deepEqual(
      expiredNodes(w.view, w.clock.now).map((n) => n.nodeId),
      ["n1"],
    );
    assert.equal(w.view.leases.size, 1);
    registerNode(w.view, { nodeId: "n1", address: "test:n1", leaseTtlMs: 10_000 }, w.clock.now);
    assert.equal(nodeAvailable(node, w.clock.now), true);
  });

  it("rebuilds the same leases after a scheduler restart, from the agents alone", async () => {
    const w = world([
      dynamicNode("a", H100_80GB, 2),
      staticNode(
        "b",
        H100_80GB,
        [
          ["3g.40gb", 4],
          ["1g.10gb", 0],
        ],
        2,
      ),
    ]);
    const engine = engineFor(w);
    await engine.place(profileRequest("2g.20gb", { workloadId: "one" }));
    await engine.place(profileRequest("3g.40gb", { workloadId: "two", count: 2 }));
    await engine.place(profileRequest("1g.10gb", { workloadId: "three", tenant: "team-b" }));
    const describe = (v: typeof w.view) =>
      [...v.leases.values()]
        .map((l) => `${l.workloadId} ${l.tenant} ${l.gpuUuid} ${l.placement?.start} ${l.migUuid}`)
        .sort();
    const before = describe(w.view);
    assert.equal(before.length, 4);

    const fresh = createClusterView();
    for (const id of w.fleet.nodeIds()) {
      registerNode(fresh, { nodeId: id, address: `test:${id}` }, w.clock.now);
      applyNodeSnapshot(fresh, w.fleet.snapshot(id), w.clock.now);
    }
    assert.deepEqual(describe(fresh), before);
    assert.deepEqual(
      leasesOfGroup(fresh, "two").map((l) => l.workloadId),
      ["two+0", "two+1"],
    );
    assert.deepEqual(tenantUsage(fresh, "team-a"), tenantUsage(w.view, "team-a"));
    // Applying the same snapshots again neither loses nor duplicates anything.
    for (const id of w.fleet.nodeIds()) applyNodeSnapshot(fresh, w.fleet.snapshot(id), w.clock.now);
    assert.deepEqual(describe(fresh), before);
  });

  it("frees the slices of a released lease, and forgets an instance created for it", () => {
    const w = world([dynamicNode("n1", H100_80GB)]);
    const id = occupy(w, "n1", 0, "4g.40gb", 0);
    assert.equal(w.view.gpuByUuid.get("GPU-n1-0")?.instanceMask, 0x0f);
    removeLease(w.view, id);
    assert.equal(w.view.gpuByUuid.get("GPU-n1-0")?.instanceMask, 0);
    assert.equal(w.view.leases.size, 0);
  });

  it("holds an instance destroyed with its lease until a snapshot stops listing it", () => {
    const w = world([dynamicNode("n1", H100_80GB)], { tombstoneTtlMs: 5000 });
    const id = occupy(w, "n1", 0, "4g.40gb", 0);
    const stale = w.fleet.snapshot("n1");
    w.fleet.releaseNow({ nodeId: "n1", address: null, workloadId: id });
    removeLease(w.view, id, w.clock.now);
    const gpu = w.view.gpuByUuid.get("GPU-n1-0");
    const held = () => [gpu?.instanceMask, gpu?.freeDevices, gpu?.slots.map((s) => s.busy)];
    assert.deepEqual(held(), [0x0f, 0, [true]], "neither free slices nor a free device right after the release");
    // The agent's lease table changed; its instance list has not caught up yet.
    applyNodeSnapshot(w.view, { ...stale, leases: [] }, w.clock.now);
    assert.deepEqual(held(), [0x0f, 0, [true]]);
    assert.equal(destroyingOn(w.view, "n1"), 1);
    assert.equal(decide(w.view, profileRequest("4g.40gb"), w.ctx()).ok, false);
    // The next sweep shows it gone.
    applyNodeSnapshot(w.view, w.fleet.snapshot("n1"), w.clock.now);
    assert.deepEqual(held(), [0, 0, []]);
    assert.equal(destroyingOn(w.view, "n1"), 0);
  });

  it("believes the agent again once the hold on a destroyed instance times out", () => {
    const w = world([dynamicNode("n1", H100_80GB)], { tombstoneTtlMs: 5000 });
    const id = occupy(w, "n1", 0, "4g.40gb", 0);
    const stale = { ...w.fleet.snapshot("n1"), leases: [] };
    removeLease(w.view, id, w.clock.now);
    w.clock.now += w.view.options.tombstoneTtlMs + 1;
    applyNodeSnapshot(w.view, stale, w.clock.now);
    const gpu = w.view.gpuByUuid.get("GPU-n1-0");
    assert.deepEqual([gpu?.freeDevices, gpu?.slots[0]?.busy], [1, false], "an idle device the agent still reports");
  });

  it("applies lease events from the agent's stream", () => {
    const w = world([dynamicNode("n1", H100_80GB)]);
    const id = occupy(w, "n1", 0, "4g.40gb", 0);
    applyLeaseEvent(w.view, "n1", { workloadId: id, change: "lost", deviceUuid: "" }, w.clock.now);
    assert.equal(w.view.leases.get(id), undefined);
  });

  it("holds a GPU out after a fatal XID, not after an application XID", () => {
    const w = world([dynamicNode("n1", H100_80GB)]);
    assert.equal(applyXid(w.view, "GPU-n1-0", 13, w.clock.now), false);
    assert.equal(applyXid(w.view, "GPU-n1-0", 79, w.clock.now), true);
    const gpu = w.view.gpuByUuid.get("GPU-n1-0");
    assert.equal(gpu?.xidHoldUntilMs, w.clock.now + w.view.options.xidHoldMs);
    assert.match(gpu?.xidReason ?? "", /XID 79/);
  });

  it("keeps a GPU UUID on the first node that reports it, and reports the second claim", () => {
    const w = world([dynamicNode("n1", H100_80GB, 1)]);
    const snapshot = w.fleet.snapshot("n1");
    registerNode(w.view, { nodeId: "clone", address: "test:clone" }, w.clock.now);
    applyNodeSnapshot(w.view, { ...snapshot, node: { ...snapshot.node, nodeId: "clone" } }, w.clock.now);
    assert.equal(w.view.gpuByUuid.get("GPU-n1-0")?.node.nodeId, "n1");
    assert.equal(w.view.nodes.get("clone")?.gpus.length, 0);
    assert.match(w.view.conflicts[0] ?? "", /^GPU GPU-n1-0: reported by n1 and clone; kept on n1/);
    // Placement never routes to the clone.
    const out = decide(w.view, profileRequest("1g.10gb"), w.ctx());
    assert.ok(out.ok);
    assert.equal(out.decision.nodeId, "n1");
  });

  it("treats a whole-GPU lease as holding every slice", () => {
    const w = world([dynamicNode("n1", H100_80GB)]);
    const snap = w.fleet.snapshot("n1");
    applyNodeSnapshot(
      w.view,
      {
        ...snap,
        leases: [
          {
            workloadId: "whole",
            tenant: "t",
            gpuIndex: 0,
            gpuUuid: "GPU-n1-0",
            migUuid: null,
            gpuInstanceId: null,
            computeInstanceId: null,
            profileName: H100_80GB.model,
            placement: null,
            createdAtMs: 0,
            instanceCreated: false,
          },
        ],
      },
      w.clock.now,
    );
    const out = decide(w.view, profileRequest("1g.10gb"), w.ctx());
    assert.ok(!out.ok);
    assert.equal(out.rejectionCounts["gpu-whole-leased"], 1);
    assert.deepEqual(tenantUsage(w.view, "t"), { computeSlices: 7, memorySlices: 8 });
  });

  it("indexes dynamic GPUs by model and free mask, static ones by free device", () => {
    const w = world([
      dynamicNode("d", H100_80GB, 2),
      staticNode("s", H100_80GB, [
        ["3g.40gb", 4],
        ["1g.10gb", 0],
      ]),
    ]);
    occupy(w, "d", 1, "3g.40gb", 4);
    const buckets = [...w.view.buckets.values()][0];
    assert.ok(buckets);
    const keys = [...buckets.entries()].filter(([, set]) => set.size > 0).map(([k, set]) => [k, set.size]);
    assert.deepEqual(
      keys.sort((a, b) => (a[0] ?? 0) - (b[0] ?? 0)),
      [
        [0x0f, 1],
        [0xff, 1],
      ],
    );
    const statics = [...(w.view.staticDevices.values().next().value ?? new Map()).entries()].filter(
      ([, set]) => set.size > 0,
    );
    const p3g = H100_80GB.profiles.findIndex((p) => p.name === "3g.40gb");
    const p1g = H100_80GB.profiles.findIndex((p) => p.name === "1g.10gb");
    assert.deepEqual(
      statics.map(([k]) => k).sort((a, b) => a - b),
      [p3g * 32 + 5, p1g * 32 + 5].sort((a, b) => a - b),
    );
    assert.equal(w.view.irregular.size, 0);
  });
});

describe("geometry from an agent's report", () => {
  for (const { key, geometry } of PRESETS) {
    it(`rebuilds ${key}'s profiles as buildGeometry does`, () => {
      const reported = geometryFromReport({
        model: geometry.model,
        pciDeviceId: geometry.pciDeviceId,
        totalMemoryMiB: geometry.totalMemoryMiB,
        profiles: [...geometry.profiles].reverse().map((p) => ({
          id: p.id,
          name: p.name,
          sliceCount: p.sliceCount,
          memorySlices: p.memorySlices,
          memoryMiB: p.memoryMiB,
          multiprocessorCount: p.multiprocessorCount,
          maxInstances: p.maxInstances,
          placementStarts: p.placements,
        })),
      });
      const pick = (g: typeof geometry) =>
        g.profiles.map((p) => [
          p.id,
          p.name,
          p.memorySlices,
          p.maxInstances,
          p.placements.join(","),
          p.mediaExtensions,
        ]);
      assert.deepEqual(pick(reported), pick(geometry));
      assert.equal(reported.memorySliceCount, geometry.memorySliceCount);
      assert.equal(reported.computeSliceCount, geometry.computeSliceCount);
    });
  }

  it("interns equal reported geometries into one set of tables", () => {
    const view = createClusterView();
    const copy = { ...A30_24GB, profiles: [...A30_24GB.profiles] };
    assert.equal(view.catalog.intern(A30_24GB), view.catalog.intern(copy));
  });
});

describe("describeCluster", () => {
  it("reports slot maps, leases, availability and fragmentation per GPU", () => {
    const w = world(
      [
        dynamicNode("a", H100_80GB, 1),
        staticNode("b", H100_80GB, [
          ["3g.40gb", 4],
          ["1g.10gb", 0],
        ]),
      ],
      {
        leaseTtlMs: 10_000,
      },
    );
    occupy(w, "a", 0, "1g.10gb", 0, "team-a");
    registerNode(w.view, { nodeId: "b", address: "test:b", leaseTtlMs: 1 }, w.clock.now);
    w.clock.now += 5;
    const r = describeCluster(w.view, w.clock.now, uniformWeights());
    const [a, b] = r.nodes;
    assert.equal(a?.available, true);
    assert.equal(b?.available, false);
    assert.match(b?.unavailableReason ?? "", /registration lease expired/);
    const gpu = a?.gpus[0];
    assert.equal(gpu?.slotMap, "[1g|--|--|--|--|--|--|--]");
    assert.equal(gpu?.fragmentation?.largestPlaceable, "3g.40gb", "the 1g@0 took the 4g and 7g");
    assert.ok((gpu?.fragmentation?.score ?? 0) > 0);
    assert.equal(a?.leases[0]?.tenant, "team-a");
    assert.deepEqual(b?.gpus[0]?.fragmentation?.fits, { "3g.40gb": 1, "1g.10gb": 1 });
    assert.deepEqual(r.totals.largestPlaceable, { "3g.40gb": 2 });
    assert.equal(r.totals.leases, 1);
  });
});
