import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import {
  type AllocateContext,
  type AllocateRequest,
  choosePlacement,
  decideAllocate,
  type GpuView,
  type ProfileView,
} from "../../src/ledger/allocate.js";
import { applyChange } from "../../src/ledger/ledger.js";
import { reconcile, vanishedLeases } from "../../src/ledger/reconcile.js";
import { EMPTY_LEDGER, type LedgerState } from "../../src/ledger/types.js";

// H100 80GB geometry (reference/scheduling.md §3.1).
const PROFILES: ProfileView[] = [
  { id: 0, name: "7g.80gb", sliceCount: 7, memorySlices: 8, maxInstances: 1, placementStarts: [0] },
  { id: 5, name: "4g.40gb", sliceCount: 4, memorySlices: 4, maxInstances: 1, placementStarts: [0] },
  { id: 9, name: "3g.40gb", sliceCount: 3, memorySlices: 4, maxInstances: 2, placementStarts: [0, 4] },
  { id: 14, name: "2g.20gb", sliceCount: 2, memorySlices: 2, maxInstances: 3, placementStarts: [0, 2, 4] },
  { id: 15, name: "1g.20gb", sliceCount: 1, memorySlices: 2, maxInstances: 4, placementStarts: [0, 2, 4, 6] },
  { id: 19, name: "1g.10gb", sliceCount: 1, memorySlices: 1, maxInstances: 7, placementStarts: [0, 1, 2, 3, 4, 5, 6] },
];

function gpu(index: number, extra: Partial<GpuView> = {}): GpuView {
  return {
    index,
    uuid: `GPU-${index}0000000-0000`,
    model: "NVIDIA H100 80GB HBM3",
    usable: true,
    healthReasons: [],
    migCapable: true,
    migEnabled: true,
    memorySliceCount: 8,
    profiles: PROFILES,
    instances: [],
    ...extra,
  };
}

const withMig = gpu(0, {
  instances: [
    {
      gpuInstanceId: 1,
      profileId: 19,
      profileName: "1g.10gb",
      placement: { start: 0, size: 1 },
      computeInstances: [{ computeInstanceId: 0, uuid: "MIG-a0000000-0000" }],
    },
    {
      gpuInstanceId: 2,
      profileId: 19,
      profileName: "1g.10gb",
      placement: { start: 1, size: 1 },
      computeInstances: [{ computeInstanceId: 0, uuid: "MIG-b0000000-0000" }],
    },
  ],
});
const whole = gpu(1, { migEnabled: false, profiles: [] });
const ctx: AllocateContext = { gpus: [withMig, whole, gpu(2)], dynamic: true, nowMs: 5 };

const req = (workloadId: string, target: AllocateRequest["target"]): AllocateRequest => ({
  workloadId,
  tenant: "t",
  target,
});

function grant(state: LedgerState, r: AllocateRequest, c = ctx): LedgerState {
  const d = decideAllocate(state, r, c);
  assert.equal(d.kind, "grant");
  return applyChange(state, { putLeases: d.kind === "grant" ? [d.lease] : [] });
}

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    return (err as { code: string }).code;
  }
  return "OK";
}

describe("decideAllocate", () => {
  it("grants an existing MIG device and returns the same lease when asked again", () => {
    const s = grant(EMPTY_LEDGER, req("w1", { kind: "device", uuid: "MIG-a0000000-0000" }));
    const lease = s.leases.get("w1");
    assert.equal(lease?.gpuInstanceId, 1);
    assert.equal(lease?.profileName, "1g.10gb");
    const again = decideAllocate(s, req("w1", { kind: "device", uuid: "MIG-a0000000-0000" }), { ...ctx, nowMs: 99 });
    assert.deepEqual(again, { kind: "existing", lease });
  });

  const refusals: [string, LedgerState | undefined, AllocateRequest, AllocateContext, string][] = [
    [
      "a device another workload holds",
      undefined,
      req("w2", { kind: "device", uuid: "MIG-a0000000-0000" }),
      ctx,
      "TESSERA_DEVICE_BUSY",
    ],
    [
      "a second device for the same workload",
      undefined,
      req("w1", { kind: "device", uuid: "MIG-b0000000-0000" }),
      ctx,
      "TESSERA_WORKLOAD_HOLDS_OTHER",
    ],
    [
      "a device that does not exist",
      undefined,
      req("w3", { kind: "device", uuid: "MIG-nope" }),
      ctx,
      "TESSERA_DEVICE_NOT_FOUND",
    ],
    ["a whole GPU with MIG on", undefined, req("w3", { kind: "device", uuid: withMig.uuid }), ctx, "TESSERA_MIG_MODE"],
    [
      "a device of an unhealthy GPU",
      undefined,
      req("w3", { kind: "device", uuid: "MIG-b0000000-0000" }),
      { ...ctx, gpus: [{ ...withMig, usable: false, healthReasons: ["XID 79"] }] },
      "TESSERA_DEVICE_UNHEALTHY",
    ],
    [
      "a new instance on a static node",
      undefined,
      req("w3", { kind: "new-instance", gpuUuid: withMig.uuid, profile: "1g.10gb", placementStart: undefined }),
      { ...ctx, dynamic: false },
      "TESSERA_MIG_MODE",
    ],
    [
      "a new instance on a GPU with MIG off",
      undefined,
      req("w3", { kind: "new-instance", gpuUuid: whole.uuid, profile: "1g.10gb", placementStart: undefined }),
      ctx,
      "TESSERA_MIG_MODE",
    ],
    [
      "a profile the GPU lacks",
      undefined,
      req("w3", { kind: "new-instance", gpuUuid: withMig.uuid, profile: "5g.50gb", placementStart: undefined }),
      ctx,
      "TESSERA_INVALID_ARGUMENT",
    ],
    [
      "an illegal start",
      undefined,
      req("w3", { kind: "new-instance", gpuUuid: withMig.uuid, profile: "3g.40gb", placementStart: 2 }),
      ctx,
      "TESSERA_INVALID_ARGUMENT",
    ],
    [
      "a taken start",
      undefined,
      req("w3", { kind: "new-instance", gpuUuid: withMig.uuid, profile: "3g.40gb", placementStart: 0 }),
      ctx,
      "TESSERA_NO_ROOM",
    ],
    [
      "a profile at its instance limit",
      undefined,
      req("w3", { kind: "new-instance", gpuUuid: withMig.uuid, profile: "4g.40gb", placementStart: undefined }),
      ctx,
      "TESSERA_NO_ROOM",
    ],
  ];
  const held = grant(EMPTY_LEDGER, req("w1", { kind: "device", uuid: "MIG-a0000000-0000" }));
  for (const [what, state, r, c, code] of refusals) {
    it(`refuses ${what}: ${code}`, () =>
      assert.equal(
        codeOf(() => decideAllocate(state ?? held, r, c)),
        code,
      ));
  }

  it("grants a whole GPU with MIG off, once", () => {
    const s = grant(EMPTY_LEDGER, req("w1", { kind: "device", uuid: whole.uuid }));
    assert.equal(s.leases.get("w1")?.migUuid, undefined);
    assert.equal(
      codeOf(() => decideAllocate(s, req("w2", { kind: "device", uuid: whole.uuid }), ctx)),
      "TESSERA_DEVICE_BUSY",
    );
  });

  it("plans a new instance where it keeps the largest profiles placeable, counting creates in flight", () => {
    const d = decideAllocate(
      EMPTY_LEDGER,
      req("n1", { kind: "new-instance", gpuUuid: withMig.uuid, profile: "1g.10gb", placementStart: undefined }),
      ctx,
    );
    assert.equal(d.kind, "create");
    // Slices 0 and 1 are taken: 2 keeps 4–7 whole for a 3g.40gb/4g.40gb-sized hole.
    assert.equal(d.kind === "create" ? d.pending.placement.start : -1, 2);
    const withPending = applyChange(EMPTY_LEDGER, { putPending: d.kind === "create" ? [d.pending] : [] });
    assert.equal(
      codeOf(() =>
        decideAllocate(
          withPending,
          req("n1", { kind: "new-instance", gpuUuid: withMig.uuid, profile: "1g.10gb", placementStart: undefined }),
          ctx,
        ),
      ),
      "TESSERA_ALLOCATION_IN_PROGRESS",
    );
    // The slice an in-flight create will use is not offered again.
    assert.equal(
      codeOf(() =>
        decideAllocate(
          withPending,
          req("n2", { kind: "new-instance", gpuUuid: withMig.uuid, profile: "1g.10gb", placementStart: 2 }),
          ctx,
        ),
      ),
      "TESSERA_NO_ROOM",
    );
  });

  it("never picks an illegal or occupied placement (property)", () => {
    fc.assert(
      fc.property(fc.subarray([0, 1, 2, 3, 4, 5, 6, 7]), fc.constantFrom(...PROFILES), (taken, profile) => {
        const occupied = taken.map((start) => ({ start, size: 1 }));
        let start: number;
        try {
          start = choosePlacement(gpu(0), profile, occupied, undefined);
        } catch (err) {
          assert.equal((err as { code: string }).code, "TESSERA_NO_ROOM");
          const free = (s: number) => [...Array(profile.memorySlices).keys()].every((i) => !taken.includes(s + i));
          assert.ok(!profile.placementStarts.some(free), "refused although a placement was free");
          return;
        }
        assert.ok(profile.placementStarts.includes(start), "legal start");
        for (let i = 0; i < profile.memorySlices; i++) assert.ok(!taken.includes(start + i), "free slices");
      }),
    );
  });
});

describe("reconcile", () => {
  it("drops leases whose device is gone and finds instances of interrupted creates", () => {
    const s = applyChange(grant(EMPTY_LEDGER, req("w1", { kind: "device", uuid: "MIG-a0000000-0000" })), {
      putPending: [
        {
          workloadId: "p1",
          tenant: "t",
          gpuIndex: 0,
          gpuUuid: withMig.uuid,
          profileId: 19,
          profileName: "1g.10gb",
          placement: { start: 1, size: 1 },
          startedAtMs: 1,
        },
        {
          workloadId: "p2",
          tenant: "t",
          gpuIndex: 2,
          gpuUuid: gpu(2).uuid,
          profileId: 9,
          profileName: "3g.40gb",
          placement: { start: 4, size: 4 },
          startedAtMs: 1,
        },
      ],
    });
    const gone = { ...withMig, instances: withMig.instances.slice(1) };
    const plan = reconcile(s, [gone, whole, gpu(2)]);
    assert.deepEqual(
      plan.lost.map((l) => l.workloadId),
      ["w1"],
    );
    assert.deepEqual(
      plan.interrupted.map((i) => [i.pending.workloadId, i.destroy?.gpuInstanceId]),
      [
        ["p1", 2],
        ["p2", undefined],
      ],
    );
    assert.deepEqual(vanishedLeases(s, [withMig]), []);
  });

  it("never destroys an instance a lease holds", () => {
    const s = applyChange(grant(EMPTY_LEDGER, req("w1", { kind: "device", uuid: "MIG-b0000000-0000" })), {
      putPending: [
        {
          workloadId: "p1",
          tenant: "t",
          gpuIndex: 0,
          gpuUuid: withMig.uuid,
          profileId: 19,
          profileName: "1g.10gb",
          placement: { start: 1, size: 1 },
          startedAtMs: 1,
        },
      ],
    });
    assert.equal(reconcile(s, [withMig]).interrupted[0]?.destroy, undefined);
  });
});
