// Property tests of the planner over every reference geometry: from random
// reachable layouts to random desired layouts, the plan either reaches the
// desired layout or is infeasible, and it is checked against a brute-force
// oracle written independently of the planner's search.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { placeabilityScore } from "../../src/mig/fragmentation.js";
import { planGpu } from "../../src/mig/plan.js";
import { simulateApply } from "../../src/mig/simulate.js";
import type {
  DesiredInstance,
  DesiredLayout,
  GpuGeometry,
  GpuInstanceState,
  GpuLayout,
  MigProfile,
} from "../../src/mig/types.js";
import { gpuUuid, migUuid, PRESETS } from "./geometries.js";

const bits = (start: number, size: number) => ((1 << size) - 1) << start;

/** A CI split for a GI: its default full CI, or as many of the smallest CI as fit. */
function split(profile: MigProfile, pick: number): number[] {
  const smallest = [...profile.computeProfiles].sort((a, b) => a.sliceCount - b.sliceCount)[0];
  if (pick % 3 !== 0 || !smallest || smallest.sliceCount === profile.sliceCount)
    return [profile.defaultComputeProfileId];
  const n = 1 + (pick % Math.min(profile.sliceCount, smallest.maxInstances));
  return Array.from({ length: n }, () => smallest.id);
}

/** Replays random create attempts, keeping those the driver would accept: a reachable layout. */
function reachable(geometry: GpuGeometry, ops: readonly [number, number, number][]): GpuLayout {
  const instances: GpuInstanceState[] = [];
  let used = 0;
  for (const [pi, si, ci] of ops) {
    const p = geometry.profiles[pi % geometry.profiles.length];
    if (!p) continue;
    const start = p.placements[si % p.placements.length] ?? 0;
    const m = bits(start, p.memorySlices);
    const count = instances.filter((g) => g.profileId === p.id).length;
    const media = instances.some((g) => geometry.profiles.find((x) => x.id === g.profileId)?.mediaExtensions);
    if (used & m || count >= p.maxInstances || (p.mediaExtensions && media)) continue;
    used |= m;
    instances.push({
      giId: instances.length + 1,
      profileId: p.id,
      placement: { start, size: p.memorySlices },
      computeInstances: split(p, ci).map((id, k) => ({ ciId: k, profileId: id, uuid: migUuid(), processIds: [] })),
    });
  }
  return { mode: { current: "enabled", pending: "enabled" }, instances };
}

// ---- oracle ----

interface Item {
  readonly profile: MigProfile;
  readonly start: number | null;
}

/** Best placeability score over every way to place `items` into `free`, or null if none fits. */
function bestPacking(geometry: GpuGeometry, free: number, items: readonly Item[]): number | null {
  const sorted = [...items].sort(
    (a, b) => (a.start === null ? 1 : 0) - (b.start === null ? 1 : 0) || a.profile.id - b.profile.id,
  );
  let best: number | null = null;
  const walk = (i: number, mask: number, minStart: number): void => {
    const item = sorted[i];
    if (!item) {
      const score = placeabilityScore(geometry, mask);
      if (best === null || score > best) best = score;
      return;
    }
    const next = sorted[i + 1];
    const starts = item.start === null ? item.profile.placements : [item.start];
    for (const s of starts) {
      // Identical unpinned items: only increasing starts (combinations, not permutations).
      if (item.start === null && s < minStart) continue;
      const m = bits(s, item.profile.memorySlices);
      if ((m & mask) !== m) continue;
      const same = item.start === null && next?.start === null && next.profile.id === item.profile.id;
      walk(i + 1, mask & ~m, same ? s + 1 : 0);
    }
  };
  walk(0, free, 0);
  return best;
}

interface Oracle {
  readonly destroyed: number;
  /** Compute instances destroyed inside kept GPU instances to reshape them. */
  readonly reshaped: number;
  readonly score: number;
}

interface Want extends Item {
  readonly cis: readonly number[];
}

function ciLoss(gi: GpuInstanceState, want: readonly number[]): number {
  const left = [...want];
  let lost = 0;
  for (const ci of gi.computeInstances) {
    const i = left.indexOf(ci.profileId);
    if (i >= 0) left.splice(i, 1);
    else lost++;
  }
  return lost;
}

/**
 * Fewest GPU instances destroyed, then fewest compute instances reshaped away,
 * then best score, to reach `desired`; null if unreachable even from empty.
 */
function oracle(
  geometry: GpuGeometry,
  current: readonly GpuInstanceState[],
  desired: readonly DesiredInstance[],
): Oracle | null {
  const profile = (id: number) => geometry.profiles.find((p) => p.id === id) as MigProfile;
  const wants: Want[] = desired.map((d) => ({
    profile: profile(d.profileId),
    start: d.start,
    cis: d.computeProfileIds,
  }));
  // The driver's limits: instances per profile, and one set of media extensions per GPU.
  if (wants.filter((w) => w.profile.mediaExtensions).length > 1) return null;
  for (const w of wants) {
    if (wants.filter((x) => x.profile.id === w.profile.id).length > w.profile.maxInstances) return null;
  }
  const full = (1 << geometry.memorySliceCount) - 1;
  for (let keep = current.length; keep >= 0; keep--) {
    let best: { reshaped: number; score: number } | null = null;
    for (let subset = 0; subset < 1 << current.length; subset++) {
      const kept = current.filter((_, i) => subset & (1 << i));
      if (kept.length !== keep) continue;
      // Each kept GI becomes some wanted instance of its profile (a pinned one only at its start).
      const assign = (k: number, left: readonly Want[], reshaped: number): void => {
        const gi = kept[k];
        if (!gi) {
          const free = kept.reduce((m, g) => m & ~bits(g.placement.start, g.placement.size), full);
          const score = bestPacking(geometry, free, left);
          if (score === null) return;
          if (best === null || reshaped < best.reshaped || (reshaped === best.reshaped && score > best.score)) {
            best = { reshaped, score };
          }
          return;
        }
        const tried = new Set<string>();
        left.forEach((w, i) => {
          const key = `${w.profile.id}@${w.start}:${w.cis.join(",")}`;
          if (tried.has(key) || w.profile.id !== gi.profileId) return;
          if (w.start !== null && w.start !== gi.placement.start) return;
          tried.add(key);
          assign(
            k + 1,
            left.filter((_, j) => j !== i),
            reshaped + ciLoss(gi, w.cis),
          );
        });
      };
      assign(0, wants, 0);
    }
    const found = best as { reshaped: number; score: number } | null;
    if (found !== null) return { destroyed: current.length - keep, reshaped: found.reshaped, score: found.score };
  }
  return null;
}

// ---- checks on the outcome ----

function assertValidLayout(geometry: GpuGeometry, layout: GpuLayout): void {
  let used = 0;
  let media = 0;
  const counts = new Map<number, number>();
  for (const gi of layout.instances) {
    const p = geometry.profiles.find((x) => x.id === gi.profileId);
    assert.ok(p, `unknown profile ${gi.profileId}`);
    assert.ok(p.placements.includes(gi.placement.start), `${p.name}@${gi.placement.start} is not a legal placement`);
    assert.equal(gi.placement.size, p.memorySlices);
    const m = bits(gi.placement.start, gi.placement.size);
    assert.equal(used & m, 0, "instances overlap");
    used |= m;
    counts.set(p.id, (counts.get(p.id) ?? 0) + 1);
    assert.ok((counts.get(p.id) ?? 0) <= p.maxInstances, `too many ${p.name}`);
    if (p.mediaExtensions) media++;
  }
  assert.ok(media <= 1, "more than one media-extension instance");
}

/** The layout has exactly the desired instances: profiles, pinned starts and CI splits. */
function assertReaches(layout: GpuLayout, desired: readonly DesiredInstance[]): void {
  const key = (profileId: number, cis: readonly number[]) => `${profileId}:${[...cis].sort().join(",")}`;
  const have = layout.instances.map((gi) => ({
    key: key(
      gi.profileId,
      gi.computeInstances.map((c) => c.profileId),
    ),
    start: gi.placement.start,
  }));
  assert.equal(have.length, desired.length, "instance count");
  // Pinned first, so a free-floating want never takes a pinned instance's GI.
  const order = [...desired].sort((a, b) => (a.start === null ? 1 : 0) - (b.start === null ? 1 : 0));
  for (const d of order) {
    const k = key(d.profileId, d.computeProfileIds);
    const i = have.findIndex((h) => h.key === k && (d.start === null || h.start === d.start));
    assert.ok(i >= 0, `missing ${k}${d.start === null ? "" : `@${d.start}`}`);
    have.splice(i, 1);
  }
}

/** A generated function that prints as the data it was made from. */
function labelled<T extends (...args: never[]) => unknown>(label: string, fn: T): T {
  return Object.assign(fn, { [fc.toStringMethod]: () => label });
}

const step = fc.tuple(fc.nat(50), fc.nat(50), fc.nat(50));

describe("plan (properties, every reference geometry)", () => {
  PRESETS.forEach(({ key, geometry }, presetIndex) => {
    it(`${key}: reaches the desired layout with the fewest destroyed, or reports it infeasible`, () => {
      type Make = (current: GpuLayout) => DesiredInstance[];
      const desiredArb: fc.Arbitrary<Make> = fc.oneof(
        // The current layout changed a little: some instances dropped, a few profiles added.
        fc
          .tuple(fc.array(fc.boolean(), { maxLength: 8 }), fc.array(fc.tuple(fc.nat(50), fc.nat(50)), { maxLength: 3 }))
          .map(
            ([drop, add]): Make =>
              labelled(`perturb ${JSON.stringify({ drop, add })}`, (current) => [
                ...current.instances
                  .filter((_, i) => !drop[i])
                  .map((gi) => ({
                    profileId: gi.profileId,
                    start: null,
                    computeProfileIds: gi.computeInstances.map((c) => c.profileId),
                  })),
                ...add.map(([pi, ci]) => {
                  const p = geometry.profiles[pi % geometry.profiles.length] as MigProfile;
                  return { profileId: p.id, start: null, computeProfileIds: split(p, ci) };
                }),
              ]),
          ),
        // Another reachable layout, some of it pinned: always feasible from empty.
        fc.tuple(fc.array(step, { maxLength: 10 }), fc.array(fc.boolean(), { maxLength: 10 })).map(
          ([ops, pins]): Make =>
            labelled(`other ${JSON.stringify({ ops, pins })}`, () =>
              reachable(geometry, ops).instances.map(
                (gi, i): DesiredInstance => ({
                  profileId: gi.profileId,
                  start: pins[i] ? gi.placement.start : null,
                  computeProfileIds: gi.computeInstances.map((c) => c.profileId),
                }),
              ),
            ),
        ),
        // Any multiset of profiles, sometimes pinned anywhere legal: often infeasible.
        fc.array(fc.tuple(fc.nat(50), fc.option(fc.nat(50), { nil: null }), fc.nat(50)), { maxLength: 8 }).map(
          (items): Make =>
            labelled(`random ${JSON.stringify(items)}`, () =>
              items.map(([pi, pin, ci]): DesiredInstance => {
                const p = geometry.profiles[pi % geometry.profiles.length] as MigProfile;
                return {
                  profileId: p.id,
                  start: pin === null ? null : (p.placements[pin % p.placements.length] ?? null),
                  computeProfileIds: split(p, ci),
                };
              }),
            ),
        ),
      );
      const seen = { infeasible: 0, kept: 0, destroyed: 0, keptAndDestroyed: 0 };
      fc.assert(
        fc.property(fc.array(step, { maxLength: 12 }), desiredArb, (ops, make) => {
          const layout = reachable(geometry, ops);
          const instances = make(layout);
          const desired: DesiredLayout = { mode: "enabled", instances };
          const plan = planGpu({
            gpu: { index: 0, uuid: gpuUuid(0), model: geometry.model },
            geometry,
            layout,
            desired,
          });
          const expected = oracle(geometry, layout.instances, instances);
          if (!plan.feasible) {
            seen.infeasible++;
            assert.equal(expected, null, `planner says infeasible (${plan.reason}) but the oracle places it`);
            return;
          }
          assert.ok(expected, "planner found a plan the oracle says is impossible");
          assert.equal(plan.destroy.length, expected.destroyed, "destroys more GPU instances than needed");
          const reshaped = plan.keep.reduce((n, k) => n + k.destroyComputeInstances.length, 0);
          assert.equal(reshaped, expected.reshaped, "destroys more compute instances than needed");
          if (plan.keep.length > 0) seen.kept++;
          if (plan.destroy.length > 0) seen.destroyed++;
          if (plan.keep.length > 0 && plan.destroy.length > 0) seen.keptAndDestroyed++;

          const after = simulateApply(layout, plan, migUuid);
          assertValidLayout(geometry, after);
          assertReaches(after, instances);
          const finalFree = after.instances.reduce(
            (m, g) => m & ~bits(g.placement.start, g.placement.size),
            (1 << geometry.memorySliceCount) - 1,
          );
          assert.equal(
            placeabilityScore(geometry, finalFree),
            expected.score,
            "a placement leaving more placeable exists",
          );

          // Kept instances are the same instances: same GI, placement and MIG device UUIDs for kept CIs.
          const destroyed = new Set(plan.destroy.map((d) => d.giId));
          for (const gi of layout.instances) {
            if (destroyed.has(gi.giId)) continue;
            const now = after.instances.find((x) => x.giId === gi.giId);
            assert.ok(now, `GI ${gi.giId} was neither kept nor destroyed`);
            assert.deepEqual(now.placement, gi.placement);
            const keptCis = plan.keep.find((k) => k.giId === gi.giId)?.keepComputeInstances ?? [];
            for (const ci of keptCis) assert.ok(now.computeInstances.some((c) => c.uuid === ci.uuid));
          }

          const again = planGpu({ gpu: plan.gpu, geometry, layout: after, desired });
          assert.ok(again.feasible && !again.changed, "planning the result again must change nothing");
        }),
        { numRuns: 300, seed: 0x7e55e7a + presetIndex, includeErrorInReport: true },
      );
      // The generators must reach the interesting cases, or the property proves little.
      assert.ok(seen.infeasible >= 15, `infeasible cases: ${seen.infeasible}`);
      assert.ok(seen.keptAndDestroyed >= 15, `cases that keep some and destroy some: ${seen.keptAndDestroyed}`);
    });
  });

  it("never destroys a busy instance when an idle one can go instead", () => {
    const geometry = PRESETS[0]?.geometry as GpuGeometry;
    fc.assert(
      fc.property(
        fc.array(step, { minLength: 1, maxLength: 10 }),
        fc.nat(20),
        fc.array(step, { maxLength: 8 }),
        (ops, b, target) => {
          const base = reachable(geometry, ops);
          const busyIndex = b % base.instances.length;
          const layout: GpuLayout = {
            ...base,
            instances: base.instances.map((gi, i) =>
              i === busyIndex
                ? { ...gi, computeInstances: gi.computeInstances.map((c) => ({ ...c, processIds: [1234] })) }
                : gi,
            ),
          };
          const instances = reachable(geometry, target).instances.map((gi) => ({
            profileId: gi.profileId,
            start: null,
            computeProfileIds: gi.computeInstances.map((c) => c.profileId),
          }));
          const plan = planGpu({
            gpu: { index: 0, uuid: gpuUuid(0), model: geometry.model },
            geometry,
            layout,
            desired: { mode: "enabled", instances },
          });
          assert.ok(plan.feasible);
          if (plan.busyDestroyed === 0) return;
          // It destroyed the busy instance: then no plan keeping it exists.
          const busy = layout.instances[busyIndex] as GpuInstanceState;
          const profile = geometry.profiles.find((p) => p.id === busy.profileId) as MigProfile;
          const rest = [...instances];
          const same = rest.findIndex((d) => d.profileId === busy.profileId && sameCis(d.computeProfileIds, busy));
          if (same < 0) return; // nothing wanted could be that instance
          rest.splice(same, 1);
          const free = ((1 << geometry.memorySliceCount) - 1) & ~bits(busy.placement.start, profile.memorySlices);
          assert.equal(
            bestPacking(
              geometry,
              free,
              rest.map((d) => ({
                profile: geometry.profiles.find((p) => p.id === d.profileId) as MigProfile,
                start: null,
              })),
            ),
            null,
            "the busy instance could have been kept",
          );
        },
      ),
      { numRuns: 150, seed: 0xb05e },
    );
  });
});

function sameCis(ids: readonly number[], gi: GpuInstanceState): boolean {
  const a = [...ids].sort();
  const b = gi.computeInstances.map((c) => c.profileId).sort();
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
