import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type FeasibleGpuPlan, type GpuPlan, planGpu, planHost } from "../../src/mig/plan.js";
import { renderPlan } from "../../src/mig/plan-render.js";
import { simulateApply } from "../../src/mig/simulate.js";
import type { DesiredInstance, DesiredLayout, GpuGeometry, GpuLayout } from "../../src/mig/types.js";
import {
  A30_24GB,
  A100_40GB,
  emptyLayout,
  gpuUuid,
  H100_80GB,
  hostGpu,
  layoutOf,
  migUuid,
  profileNamed,
} from "./geometries.js";

function want(geometry: GpuGeometry, name: string, start: number | null = null, cis?: string[]): DesiredInstance {
  const p = profileNamed(geometry, name);
  const ids = cis
    ? cis.map((c) => {
        const ci = p.computeProfiles.find((x) => x.name === c);
        if (!ci) throw new Error(`no CI ${c} in ${name}`);
        return ci.id;
      })
    : [p.defaultComputeProfileId];
  return { profileId: p.id, start, computeProfileIds: ids };
}

function desired(geometry: GpuGeometry, ...items: (string | DesiredInstance)[]): DesiredLayout {
  return { mode: "enabled", instances: items.map((i) => (typeof i === "string" ? want(geometry, i) : i)) };
}

function plan(geometry: GpuGeometry, layout: GpuLayout, d: DesiredLayout): GpuPlan {
  return planGpu({ gpu: { index: 0, uuid: gpuUuid(0), model: geometry.model }, geometry, layout, desired: d });
}

function feasible(p: GpuPlan): FeasibleGpuPlan {
  assert.ok(p.feasible, p.feasible ? "" : `expected feasible, got: ${p.reason}`);
  return p;
}

const placed = (p: FeasibleGpuPlan) => p.create.map((c) => `${c.profileName}@${c.placement.start}`);

describe("plan", () => {
  it("keeps instances that already match: nothing to do", () => {
    const layout = layoutOf(H100_80GB, [
      ["3g.40gb", 4],
      ["1g.10gb", 0],
      ["1g.10gb", 1],
    ]);
    const p = feasible(plan(H100_80GB, layout, desired(H100_80GB, "1g.10gb", "3g.40gb", "1g.10gb")));
    assert.equal(p.changed, false);
    assert.equal(p.destroy.length, 0);
    assert.equal(p.create.length, 0);
    assert.deepEqual(
      p.keep.map((k) => k.giId),
      [2, 3, 1],
    );
    assert.equal(p.slotsBefore, p.slotsAfter);
  });

  it("adds instances around the ones that stay, keeping their UUIDs", () => {
    const layout = layoutOf(H100_80GB, [["3g.40gb", 4]]);
    const uuid = layout.instances[0]?.computeInstances[0]?.uuid;
    const p = feasible(plan(H100_80GB, layout, desired(H100_80GB, "3g.40gb", "2g.20gb", "1g.10gb")));
    assert.equal(p.destroy.length, 0);
    assert.deepEqual(
      p.keep[0]?.keepComputeInstances.map((c) => c.uuid),
      [uuid],
    );
    assert.deepEqual(placed(p).sort(), ["1g.10gb@2", "2g.20gb@0"]);
    assert.equal(p.slotsAfter, "[2g.20|1g|--|3g.40gb    ]");
  });

  it("destroys only what must go", () => {
    // 4g.40gb can only start at 0, so the 3g at 0 goes and the 3g at 4 stays.
    const layout = layoutOf(H100_80GB, [
      ["3g.40gb", 0],
      ["3g.40gb", 4],
    ]);
    const p = feasible(plan(H100_80GB, layout, desired(H100_80GB, "3g.40gb", "4g.40gb")));
    assert.deepEqual(
      p.destroy.map((d) => `${d.profileName}@${d.placement.start}`),
      ["3g.40gb@0"],
    );
    assert.deepEqual(
      p.keep.map((k) => `${k.profileName}@${k.placement.start}`),
      ["3g.40gb@4"],
    );
    assert.deepEqual(placed(p), ["4g.40gb@0"]);
  });

  it("plans the layouts that fail in mig-parted's issue tracker", () => {
    // mig-parted #29 on an 80 GB GPU.
    assert.deepEqual(placed(feasible(plan(H100_80GB, emptyLayout(), desired(H100_80GB, "3g.40gb", "4g.40gb")))), [
      "4g.40gb@0",
      "3g.40gb@4",
    ]);
    assert.deepEqual(
      placed(feasible(plan(H100_80GB, emptyLayout(), desired(H100_80GB, "1g.10gb", "2g.20gb", "4g.40gb")))),
      ["4g.40gb@0", "2g.20gb@4", "1g.10gb@6"],
    );
    // The MIG guide's order-dependent `-cgi 19,19,14,9` on an A100-40GB: order never matters here.
    const p = feasible(plan(A100_40GB, emptyLayout(), desired(A100_40GB, "1g.5gb", "1g.5gb", "2g.10gb", "3g.20gb")));
    assert.deepEqual(placed(p), ["2g.10gb@0", "1g.5gb@2", "1g.5gb@3", "3g.20gb@4"]);
  });

  it("chooses placements that leave the largest profiles placeable", () => {
    // One 1g at slice 6 leaves 4g@0 and three 2g placeable; at 0 neither 4g nor a full 3g pair would fit.
    assert.deepEqual(placed(feasible(plan(H100_80GB, emptyLayout(), desired(H100_80GB, "1g.10gb")))), ["1g.10gb@6"]);
    const three = feasible(plan(H100_80GB, emptyLayout(), desired(H100_80GB, "3g.40gb")));
    assert.deepEqual(placed(three), ["3g.40gb@4"]);
    assert.equal(three.largestPlaceableAfter, "4g.40gb");
    assert.deepEqual(placed(feasible(plan(H100_80GB, emptyLayout(), desired(H100_80GB, "2g.20gb")))), ["2g.20gb@4"]);
  });

  it("places 1g.20gb (two memory slices) and 7g (all eight)", () => {
    const rev2 = feasible(plan(H100_80GB, emptyLayout(), desired(H100_80GB, ...Array(4).fill("1g.20gb"))));
    assert.deepEqual(
      rev2.create.map((c) => c.placement),
      [0, 2, 4, 6].map((start) => ({ start, size: 2 })),
    );
    const whole = feasible(plan(H100_80GB, layoutOf(H100_80GB, [["1g.10gb", 3]]), desired(H100_80GB, "7g.80gb")));
    assert.equal(whole.destroy.length, 1);
    assert.deepEqual(whole.create[0]?.placement, { start: 0, size: 8 });
  });

  it("plans the A30's four memory slices", () => {
    const p = feasible(
      plan(A30_24GB, layoutOf(A30_24GB, [["1g.6gb", 3]]), desired(A30_24GB, "2g.12gb", "1g.6gb", "1g.6gb")),
    );
    assert.equal(p.destroy.length, 0);
    assert.deepEqual(placed(p), ["2g.12gb@0", "1g.6gb@2"]);
    const infeasible = plan(A30_24GB, emptyLayout(), desired(A30_24GB, "2g.12gb+me", "1g.6gb+me"));
    assert.ok(!infeasible.feasible);
    assert.match(infeasible.reason, /at most one \+me instance/);
  });

  it("reports infeasible layouts with the reason, before touching anything", () => {
    const layout = layoutOf(H100_80GB, [["1g.10gb", 0]]);
    const cases: [DesiredLayout, RegExp][] = [
      [
        desired(H100_80GB, "3g.40gb", "3g.40gb", "3g.40gb"),
        /3 × 3g.40gb requested, but NVIDIA H100 80GB HBM3 holds at most 2/,
      ],
      [desired(H100_80GB, ...Array(8).fill("1g.10gb")), /8 × 1g.10gb requested.*at most 7/],
      [desired(H100_80GB, "1g.10gb+me", "1g.10gb+me"), /holds at most 1|one \+me/],
      [desired(H100_80GB, "4g.40gb", "3g.40gb", "1g.10gb"), /need 9 memory slices, but .* has 8/],
      [desired(H100_80GB, ...Array(6).fill("1g.10gb"), "2g.20gb"), /need 8 compute slices, but .* has 7/],
      [
        desired(H100_80GB, "4g.40gb", want(H100_80GB, "3g.40gb", 0)),
        /no arrangement of legal placements fits them all: 1 × 4g.40gb \(starts 0, 4 slices each\)/,
      ],
      [
        desired(H100_80GB, want(H100_80GB, "3g.40gb", 0), want(H100_80GB, "4g.40gb", 0)),
        /pinned placements overlap: 3g.40gb@0 and 4g.40gb@0/,
      ],
      [desired(H100_80GB, want(H100_80GB, "3g.40gb", 2)), /3g.40gb cannot start at memory slice 2; legal starts: 0, 4/],
    ];
    for (const [d, reason] of cases) {
      const p = plan(H100_80GB, layout, d);
      assert.ok(!p.feasible, `expected infeasible: ${reason}`);
      assert.match(p.reason, reason);
      assert.equal(p.slotsBefore, "[1g|--|--|--|--|--|--|--]");
      assert.ok(!("destroy" in p), "an infeasible plan carries no steps");
    }
  });

  it("prefers destroying idle instances to busy ones", () => {
    // Either 1g must go to make room for a 3g; the busy one at slice 0 stays.
    const layout = layoutOf(
      H100_80GB,
      [
        ["1g.10gb", 0],
        ["1g.10gb", 4],
      ],
      [0],
    );
    const p = feasible(plan(H100_80GB, layout, desired(H100_80GB, "1g.10gb", "3g.40gb")));
    assert.deepEqual(
      p.keep.map((k) => k.placement.start),
      [0],
    );
    assert.deepEqual(placed(p), ["3g.40gb@4"]);
    assert.equal(p.busyDestroyed, 0);
  });

  it("marks busy instances it must destroy", () => {
    const layout = layoutOf(H100_80GB, [["3g.40gb", 0]], [0]);
    const p = feasible(plan(H100_80GB, layout, desired(H100_80GB, "7g.80gb")));
    assert.equal(p.destroy[0]?.busy, true);
    assert.equal(p.busyDestroyed, 1);
    assert.match(renderPlan({ feasible: true, gpus: [p] }), /BUSY: pids 4400[\s\S]*apply refuses unless forced/);
  });

  it("honours pinned placements, moving an instance only when pinned elsewhere", () => {
    const at0 = layoutOf(H100_80GB, [["3g.40gb", 0]]);
    const moved = feasible(plan(H100_80GB, at0, desired(H100_80GB, want(H100_80GB, "3g.40gb", 4))));
    assert.equal(moved.destroy.length, 1);
    assert.deepEqual(
      moved.create.map((c) => [c.placement.start, c.pinned]),
      [[4, true]],
    );
    const stays = feasible(plan(H100_80GB, at0, desired(H100_80GB, want(H100_80GB, "3g.40gb", 0), "3g.40gb")));
    assert.equal(stays.destroy.length, 0);
    assert.deepEqual(placed(stays), ["3g.40gb@4"]);
  });

  it("reshapes compute instances inside a kept GPU instance", () => {
    const layout = layoutOf(H100_80GB, [["3g.40gb", 4]]);
    const p = feasible(
      plan(
        H100_80GB,
        layout,
        desired(H100_80GB, want(H100_80GB, "3g.40gb", null, ["1c.3g.40gb", "1c.3g.40gb", "1c.3g.40gb"])),
      ),
    );
    assert.ok(p.changed);
    assert.equal(p.destroy.length, 0);
    assert.equal(p.keep[0]?.giId, 1);
    assert.deepEqual(
      p.keep[0]?.destroyComputeInstances.map((c) => c.name),
      ["3g.40gb"],
    );
    assert.deepEqual(
      p.keep[0]?.createComputeInstances.map((c) => c.name),
      ["1c.3g.40gb", "1c.3g.40gb", "1c.3g.40gb"],
    );
  });

  it("keeps the GPU instance whose compute split already matches", () => {
    const split = (start: number) => ({
      giId: start + 1,
      profileId: profileNamed(H100_80GB, "3g.40gb").id,
      placement: { start, size: 4 },
      computeInstances: [0, 1, 2].map((ciId) => ({ ciId, profileId: 0, uuid: migUuid(), processIds: [] })),
    });
    const full = layoutOf(H100_80GB, [["3g.40gb", 0]]).instances[0];
    assert.ok(full);
    const layout: GpuLayout = { mode: { current: "enabled", pending: "enabled" }, instances: [full, split(4)] };
    const d = desired(
      H100_80GB,
      want(H100_80GB, "3g.40gb", null, ["1c.3g.40gb", "1c.3g.40gb", "1c.3g.40gb"]),
      want(H100_80GB, "3g.40gb"),
    );
    const p = feasible(plan(H100_80GB, layout, d));
    assert.equal(p.changed, false, "each GI is matched to the wanted instance with its own split");
  });

  it("changes MIG mode, destroying everything first when disabling", () => {
    const layout = layoutOf(H100_80GB, [["7g.80gb", 0]]);
    const off = feasible(plan(H100_80GB, layout, { mode: "disabled", instances: [] }));
    assert.deepEqual(off.modeChange, { from: "enabled", pending: "enabled", to: "disabled" });
    assert.equal(off.destroy.length, 1);
    const on = feasible(plan(H100_80GB, emptyLayout("disabled"), desired(H100_80GB, "3g.40gb", "3g.40gb")));
    assert.deepEqual(on.modeChange, { from: "disabled", pending: "disabled", to: "enabled" });
    // An Ampere GPU waiting for a reset to enable MIG still needs the change carried through.
    const waiting: GpuLayout = { mode: { current: "disabled", pending: "enabled" }, instances: [] };
    const pendingPlan = feasible(plan(H100_80GB, waiting, desired(H100_80GB, "7g.80gb")));
    assert.deepEqual(pendingPlan.modeChange, { from: "disabled", pending: "enabled", to: "enabled" });
    assert.match(renderPlan({ feasible: true, gpus: [pendingPlan] }), /mode {5}disabled \(pending enabled\) → enabled/);
    assert.equal(on.create.length, 2);
    const still = feasible(plan(H100_80GB, emptyLayout("disabled"), { mode: "disabled", instances: [] }));
    assert.equal(still.changed, false);
  });

  it("is idempotent: planning the result again changes nothing", () => {
    const layout = layoutOf(H100_80GB, [
      ["1g.10gb", 0],
      ["2g.20gb", 2],
    ]);
    const d = desired(H100_80GB, "3g.40gb", "2g.20gb", "1g.10gb", "1g.10gb");
    const p = feasible(plan(H100_80GB, layout, d));
    const after = simulateApply(layout, p, migUuid);
    assert.equal(feasible(plan(H100_80GB, after, d)).changed, false);
  });

  it("is a plain value: JSON round-trips it", () => {
    const p = plan(H100_80GB, layoutOf(H100_80GB, [["1g.10gb", 0]]), desired(H100_80GB, "4g.40gb", "2g.20gb"));
    assert.deepEqual(JSON.parse(JSON.stringify(p)), p);
  });

  it("plans a host and renders it per GPU", () => {
    const host = planHost([
      {
        gpu: hostGpu(0, H100_80GB, layoutOf(H100_80GB, [["3g.40gb", 0]])),
        desired: desired(H100_80GB, "3g.40gb", "4g.40gb"),
      },
      { gpu: hostGpu(1, H100_80GB), desired: desired(H100_80GB, "7g.80gb", "1g.10gb") },
    ]);
    assert.equal(host.feasible, false);
    const text = renderPlan(host);
    assert.match(text, /GPU 0 {2}NVIDIA H100 80GB HBM3 {2}GPU-\S+: 0 kept, 1 to destroy, 2 to create/);
    assert.match(text, /before {3}\[3g.40gb {4}\|--\|--\|--\|--\]/);
    assert.match(text, /after {4}\[4g.40gb {4}\|3g.40gb {4}\]/);
    assert.match(text, /GPU 1 .*INFEASIBLE: the instances need 9 memory slices/);
    assert.match(text, /nothing on this host will be changed/);
  });
});
