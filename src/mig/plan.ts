// The MIG planner: from the current layout of a GPU and the desired one, the
// minimal change. It keeps every instance that already matches, destroys only
// what must go, and places new instances at explicit slots chosen by an exact
// search, preferring slots that leave the largest profiles placeable. A layout
// that cannot be placed is reported infeasible before anything is touched.
// Pure: a plan is a JSON-serialisable value.

import { placeabilityScore } from "./fragmentation.js";
import {
  computeProfileById,
  describeStarts,
  fullMask,
  isLegalPlacement,
  placementMask,
  popcount,
  profileById,
} from "./geometry.js";
import { renderSlotMap, type SlotMapInstance } from "./slot-map.js";
import type {
  ComputeInstanceState,
  DesiredLayout,
  GpuGeometry,
  GpuInstanceState,
  GpuLayout,
  HostGpu,
  MigMode,
  MigProfile,
  Placement,
} from "./types.js";

export interface PlanGpuRef {
  readonly index: number;
  readonly uuid: string;
  readonly model: string;
}

export interface PlannedComputeInstance {
  readonly profileId: number;
  readonly name: string;
}

export interface ExistingComputeInstance extends PlannedComputeInstance {
  readonly ciId: number;
  readonly uuid: string;
  readonly processIds: readonly number[];
}

/** A GPU instance that stays (same GI, same placement); its compute instances may be reshaped. */
export interface KeepStep {
  readonly giId: number;
  readonly profileId: number;
  readonly profileName: string;
  readonly placement: Placement;
  readonly keepComputeInstances: readonly ExistingComputeInstance[];
  readonly destroyComputeInstances: readonly ExistingComputeInstance[];
  readonly createComputeInstances: readonly PlannedComputeInstance[];
}

export interface DestroyStep {
  readonly giId: number;
  readonly profileId: number;
  /** `unknown profile <id>` when the geometry does not list it. */
  readonly profileName: string;
  readonly placement: Placement;
  readonly computeInstances: readonly ExistingComputeInstance[];
  /** Some compute instance has processes: apply refuses unless forced. */
  readonly busy: boolean;
}

export interface CreateStep {
  readonly profileId: number;
  readonly profileName: string;
  readonly placement: Placement;
  /** The spec pinned this placement (`3g.40gb@4`); otherwise the planner chose it. */
  readonly pinned: boolean;
  readonly computeInstances: readonly PlannedComputeInstance[];
}

export interface ModeChange {
  readonly from: MigMode;
  /** The mode NVML says is pending (differs from `from` while a change awaits a GPU reset). */
  readonly pending: MigMode;
  readonly to: MigMode;
}

export interface FeasibleGpuPlan {
  readonly gpu: PlanGpuRef;
  readonly feasible: true;
  /** False when the GPU already has the desired layout: nothing to do. */
  readonly changed: boolean;
  /** Order for apply: destroy (CIs, then GIs), mode change, create. */
  readonly modeChange: ModeChange | null;
  readonly keep: readonly KeepStep[];
  readonly destroy: readonly DestroyStep[];
  readonly create: readonly CreateStep[];
  /** MIG devices with processes that this plan destroys. */
  readonly busyDestroyed: number;
  readonly slotsBefore: string;
  readonly slotsAfter: string;
  /** Largest profile that still fits once the plan is applied. */
  readonly largestPlaceableAfter: string | null;
}

export interface InfeasibleGpuPlan {
  readonly gpu: PlanGpuRef;
  readonly feasible: false;
  readonly reason: string;
  readonly slotsBefore: string;
}

export type GpuPlan = FeasibleGpuPlan | InfeasibleGpuPlan;

export interface HostPlan {
  readonly feasible: boolean;
  readonly gpus: readonly GpuPlan[];
}

export interface PlanGpuInput {
  readonly gpu: PlanGpuRef;
  readonly geometry: GpuGeometry;
  readonly layout: GpuLayout;
  readonly desired: DesiredLayout;
}

// ---- internal model ----

interface Existing {
  readonly state: GpuInstanceState;
  readonly profile: MigProfile | undefined;
  readonly mask: number;
  readonly busyCis: number;
}

interface Want {
  readonly profile: MigProfile;
  readonly start: number | null;
  readonly cis: readonly number[];
}

/** Lexicographic: busy MIG devices destroyed, GPU instances destroyed, compute instances destroyed in kept GIs. */
type Cost = readonly [number, number, number];

interface Matching {
  readonly pairs: ReadonlyMap<number, number>; // existing index -> want index
  readonly cost: Cost;
}

interface Packing {
  readonly score: number;
  readonly starts: ReadonlyMap<number, number>; // want index -> start
}

function isBusy(ci: ComputeInstanceState): boolean {
  return ci.processIds.length > 0;
}

/** Which existing CIs stay, go, and which CI profiles are created, to turn `existing` into `wanted`. */
function diffComputeInstances(
  existing: readonly ComputeInstanceState[],
  wanted: readonly number[],
): { keep: ComputeInstanceState[]; destroy: ComputeInstanceState[]; create: number[] } {
  // Keep busy CIs first when several of one profile exist.
  const pool = [...existing].sort((a, b) => Number(isBusy(b)) - Number(isBusy(a)) || a.ciId - b.ciId);
  const keep: ComputeInstanceState[] = [];
  const create: number[] = [];
  for (const id of wanted) {
    const i = pool.findIndex((ci) => ci.profileId === id);
    const found = i >= 0 ? pool.splice(i, 1)[0] : undefined;
    if (found) keep.push(found);
    else create.push(id);
  }
  return { keep, destroy: pool, create };
}

function ciCost(existing: readonly ComputeInstanceState[], wanted: readonly number[]): readonly [number, number] {
  const { destroy } = diffComputeInstances(existing, wanted);
  return [destroy.filter(isBusy).length, destroy.length];
}

function compareCost(a: Cost, b: Cost): number {
  return a[0] - b[0] || a[1] - b[1] || a[2] - b[2];
}

/** Pairs kept GIs with wanted instances; null when some kept GI has no wanted instance to be. */
function matchKept(kept: readonly number[], existing: readonly Existing[], wants: readonly Want[]): Matching | null {
  const pairs = new Map<number, number>();
  const taken = new Set<number>();
  const loose: number[] = [];
  // A kept GI sitting where a pinned instance of its profile is wanted must be that instance:
  // nothing else can ever occupy that start.
  for (const e of kept) {
    const ex = existing[e];
    if (!ex?.profile) return null;
    const w = wants.findIndex(
      (want, i) => !taken.has(i) && want.start === ex.state.placement.start && want.profile.id === ex.profile?.id,
    );
    if (w >= 0) {
      pairs.set(e, w);
      taken.add(w);
    } else {
      loose.push(e);
    }
  }
  // The rest go to unpinned wants of the same profile, choosing the assignment that reshapes the fewest CIs.
  let busy = 0;
  let cis = 0;
  const byProfile = new Map<number, number[]>();
  for (const e of loose) {
    const id = existing[e]?.profile?.id ?? -1;
    byProfile.set(id, [...(byProfile.get(id) ?? []), e]);
  }
  for (const [profileId, gis] of byProfile) {
    const slots = wants.flatMap((w, i) => (w.start === null && w.profile.id === profileId && !taken.has(i) ? [i] : []));
    if (gis.length > slots.length) return null;
    const best = assignComputeInstances(gis, slots, existing, wants);
    busy += best.busy;
    cis += best.destroyed;
    best.assignment.forEach((w, k) => {
      const e = gis[k];
      if (e !== undefined) pairs.set(e, w);
    });
  }
  return { pairs, cost: [busy, 0, cis] };
}

/** Exhaustive assignment of same-profile GIs to wanted instances (at most a handful of each). */
function assignComputeInstances(
  gis: readonly number[],
  slots: readonly number[],
  existing: readonly Existing[],
  wants: readonly Want[],
): { assignment: number[]; busy: number; destroyed: number } {
  const uniform = slots.every((s) => sameIds(wants[s]?.cis ?? [], wants[slots[0] ?? 0]?.cis ?? []));
  if (uniform) {
    let busy = 0;
    let destroyed = 0;
    const assignment = gis.map((e, k) => {
      const [b, d] = ciCost(existing[e]?.state.computeInstances ?? [], wants[slots[k] ?? 0]?.cis ?? []);
      busy += b;
      destroyed += d;
      return slots[k] ?? 0;
    });
    return { assignment, busy, destroyed };
  }
  let best: { assignment: number[]; busy: number; destroyed: number } | null = null;
  const used = new Set<number>();
  const current: number[] = [];
  const walk = (k: number, busy: number, destroyed: number): void => {
    if (best && (busy > best.busy || (busy === best.busy && destroyed >= best.destroyed))) return;
    if (k === gis.length) {
      best = { assignment: [...current], busy, destroyed };
      return;
    }
    const e = gis[k] ?? 0;
    for (const s of slots) {
      if (used.has(s)) continue;
      const [b, d] = ciCost(existing[e]?.state.computeInstances ?? [], wants[s]?.cis ?? []);
      used.add(s);
      current.push(s);
      walk(k + 1, busy + b, destroyed + d);
      current.pop();
      used.delete(s);
    }
  };
  walk(0, 0, 0);
  return best ?? { assignment: [], busy: 0, destroyed: 0 };
}

function sameIds(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/**
 * Places the wanted instances that are not kept into `freeMask`: pinned ones
 * at their start, the rest by exhaustive search over legal placements,
 * maximising the placeability of what stays free. Null when nothing fits.
 */
function pack(
  geometry: GpuGeometry,
  freeMask: number,
  wants: readonly Want[],
  todo: readonly number[],
): Packing | null {
  const needed = todo.reduce((n, w) => n + (wants[w]?.profile.memorySlices ?? 0), 0);
  if (needed > popcount(freeMask)) return null;
  let mask = freeMask;
  const starts = new Map<number, number>();
  for (const w of todo) {
    const want = wants[w];
    if (!want || want.start === null) continue;
    const m = placementMask(want.start, want.profile.memorySlices);
    if ((m & mask) !== m) return null;
    mask &= ~m;
    starts.set(w, want.start);
  }
  // Unpinned instances grouped by profile, largest (most constrained) first; within a group only
  // combinations are tried, never permutations of identical instances.
  const groups = new Map<number, { profile: MigProfile; members: number[] }>();
  for (const w of todo) {
    const want = wants[w];
    if (!want || want.start !== null) continue;
    const group = groups.get(want.profile.id) ?? { profile: want.profile, members: [] };
    group.members.push(w);
    groups.set(want.profile.id, group);
  }
  const order = [...groups.values()].sort(
    (a, b) => b.profile.memorySlices - a.profile.memorySlices || a.profile.id - b.profile.id,
  );

  // memo: (group, free mask) -> best score from this group on (-1: nothing fits), and which of the
  // group's placements that best picks (a bit per placement index). Numbers only: no allocation per state.
  const memo = new Map<number, number>();
  const picks = new Map<number, number>();
  const space = 1 << geometry.memorySliceCount;
  const solveGroup = (g: number, free: number): number => {
    const group = order[g];
    if (!group) return placeabilityScore(geometry, free);
    const key = g * space + free;
    const cached = memo.get(key);
    if (cached !== undefined) return cached;
    const placements = group.profile.placements;
    const size = group.profile.memorySlices;
    let bestScore = -1;
    let bestPick = 0;
    const choose = (from: number, left: number, m: number, pick: number): void => {
      if (left === 0) {
        const score = solveGroup(g + 1, m);
        if (score > bestScore) {
          bestScore = score;
          bestPick = pick;
        }
        return;
      }
      for (let i = from; i <= placements.length - left; i++) {
        const pm = placementMask(placements[i] ?? 0, size);
        if ((pm & m) === pm) choose(i + 1, left - 1, m & ~pm, pick | (1 << i));
      }
    };
    choose(0, group.members.length, free, 0);
    memo.set(key, bestScore);
    picks.set(key, bestPick);
    return bestScore;
  };

  const score = solveGroup(0, mask);
  if (score < 0) return null;
  // Walk the memo down the best branch to read off each group's placements.
  let free = mask;
  order.forEach((group, g) => {
    const pick = picks.get(g * space + free) ?? 0;
    let k = 0;
    group.profile.placements.forEach((start, i) => {
      if (!(pick & (1 << i))) return;
      const w = group.members[k++];
      if (w !== undefined) starts.set(w, start);
      free &= ~placementMask(start, group.profile.memorySlices);
    });
  });
  return { score, starts };
}

/** Reasons a desired layout can never be placed, found without searching. */
function precheck(geometry: GpuGeometry, wants: readonly Want[]): string | null {
  const model = geometry.model;
  const counts = new Map<number, number>();
  for (const w of wants) counts.set(w.profile.id, (counts.get(w.profile.id) ?? 0) + 1);
  for (const [id, n] of counts) {
    const p = profileById(geometry, id);
    if (p && n > p.maxInstances) {
      return `${n} × ${p.name} requested, but ${model} holds at most ${p.maxInstances}`;
    }
  }
  const media = wants.filter((w) => w.profile.mediaExtensions);
  if (media.length > 1) {
    return `${media.length} media-extension instances requested (${media.map((w) => w.profile.name).join(", ")}), but a GPU has one set of media extensions: at most one +me instance`;
  }
  const memory = wants.reduce((n, w) => n + w.profile.memorySlices, 0);
  if (memory > geometry.memorySliceCount) {
    return `the instances need ${memory} memory slices, but ${model} has ${geometry.memorySliceCount}`;
  }
  const compute = wants.reduce((n, w) => n + w.profile.sliceCount, 0);
  if (compute > geometry.computeSliceCount) {
    return `the instances need ${compute} compute slices, but ${model} has ${geometry.computeSliceCount}`;
  }
  const pinned = wants.filter((w) => w.start !== null);
  for (let i = 0; i < pinned.length; i++) {
    for (let j = i + 1; j < pinned.length; j++) {
      const a = pinned[i];
      const b = pinned[j];
      if (!a || !b || a.start === null || b.start === null) continue;
      if ((placementMask(a.start, a.profile.memorySlices) & placementMask(b.start, b.profile.memorySlices)) !== 0) {
        return `pinned placements overlap: ${a.profile.name}@${a.start} and ${b.profile.name}@${b.start}`;
      }
    }
  }
  return null;
}

function describeNoFit(wants: readonly Want[]): string {
  const byProfile = new Map<number, { profile: MigProfile; n: number }>();
  for (const w of wants) {
    const entry = byProfile.get(w.profile.id);
    byProfile.set(w.profile.id, { profile: w.profile, n: (entry?.n ?? 0) + 1 });
  }
  const parts = [...byProfile.values()].map(
    ({ profile, n }) =>
      `${n} × ${profile.name} (starts ${describeStarts(profile.placements)}, ${profile.memorySlices} slices each)`,
  );
  return `no arrangement of legal placements fits them all: ${parts.join(", ")}`;
}

/** Checks a desired layout against the geometry; returns the wanted instances or why the layout is malformed. */
function toWants(geometry: GpuGeometry, desired: DesiredLayout): { wants: Want[] } | { error: string } {
  const wants: Want[] = [];
  for (const d of desired.instances) {
    const profile = profileById(geometry, d.profileId);
    if (!profile) return { error: `profile ID ${d.profileId} does not exist on ${geometry.model}` };
    if (d.start !== null && !isLegalPlacement(profile, d.start)) {
      return {
        error: `${profile.name} cannot start at memory slice ${d.start}; legal starts: ${describeStarts(profile.placements)}`,
      };
    }
    if (d.computeProfileIds.length === 0) return { error: `${profile.name} needs at least one compute instance` };
    let slices = 0;
    const perCi = new Map<number, number>();
    for (const id of d.computeProfileIds) {
      const ci = computeProfileById(profile, id);
      if (!ci) return { error: `compute profile ID ${id} does not exist in ${profile.name}` };
      slices += ci.sliceCount;
      perCi.set(id, (perCi.get(id) ?? 0) + 1);
      if ((perCi.get(id) ?? 0) > ci.maxInstances) {
        return { error: `${profile.name} holds at most ${ci.maxInstances} × ${ci.name}` };
      }
    }
    if (slices > profile.sliceCount) {
      return { error: `compute instances of ${profile.name} need ${slices} slices; it has ${profile.sliceCount}` };
    }
    const cis = [...d.computeProfileIds].sort(
      (a, b) =>
        (computeProfileById(profile, b)?.sliceCount ?? 0) - (computeProfileById(profile, a)?.sliceCount ?? 0) || a - b,
    );
    wants.push({ profile, start: d.start, cis });
  }
  return { wants };
}

function ciName(profile: MigProfile | undefined, id: number): string {
  return (profile && computeProfileById(profile, id)?.name) ?? `unknown compute profile ${id}`;
}

function existingCi(profile: MigProfile | undefined, ci: ComputeInstanceState): ExistingComputeInstance {
  return {
    ciId: ci.ciId,
    profileId: ci.profileId,
    name: ciName(profile, ci.profileId),
    uuid: ci.uuid,
    processIds: ci.processIds,
  };
}

function destroyStep(e: Existing): DestroyStep {
  return {
    giId: e.state.giId,
    profileId: e.state.profileId,
    profileName: e.profile?.name ?? `unknown profile ${e.state.profileId}`,
    placement: e.state.placement,
    computeInstances: e.state.computeInstances.map((ci) => existingCi(e.profile, ci)),
    busy: e.busyCis > 0,
  };
}

/** Plans one GPU. Never throws for layouts that cannot be placed: they come back infeasible, with the reason. */
export function planGpu(input: PlanGpuInput): GpuPlan {
  const { gpu, geometry, layout, desired } = input;
  const current = layout.mode.current;
  const instances = current === "enabled" ? layout.instances : [];
  const slotsBefore = renderSlotMap(geometry, instances);
  const infeasible = (reason: string): InfeasibleGpuPlan => ({ gpu, feasible: false, reason, slotsBefore });

  const existing: Existing[] = [...instances]
    .sort((a, b) => a.placement.start - b.placement.start || a.giId - b.giId)
    .map((state) => ({
      state,
      profile: profileById(geometry, state.profileId),
      mask: placementMask(state.placement.start, state.placement.size),
      busyCis: state.computeInstances.filter(isBusy).length,
    }));

  const needsModeChange = layout.mode.current !== desired.mode || layout.mode.pending !== desired.mode;
  const modeChange: ModeChange | null = needsModeChange
    ? { from: current, pending: layout.mode.pending, to: desired.mode }
    : null;

  if (desired.mode === "disabled") {
    if (desired.instances.length > 0) return infeasible("MIG instances requested with MIG mode disabled");
    const destroy = existing.map(destroyStep);
    return {
      gpu,
      feasible: true,
      changed: destroy.length > 0 || modeChange !== null,
      modeChange,
      keep: [],
      destroy,
      create: [],
      busyDestroyed: existing.reduce((n, e) => n + e.busyCis, 0),
      slotsBefore,
      slotsAfter: renderSlotMap(geometry, []),
      largestPlaceableAfter: null,
    };
  }

  const checked = toWants(geometry, desired);
  if ("error" in checked) return infeasible(checked.error);
  const wants = checked.wants;
  const why = precheck(geometry, wants);
  if (why) return infeasible(why);
  // Placeable at all (on an emptied GPU)? Otherwise no choice of what to keep can help.
  const everything = wants.map((_, w) => w);
  if (!pack(geometry, fullMask(geometry), wants, everything)) return infeasible(describeNoFit(wants));

  // Only GIs whose profile is wanted can be kept; the rest go whatever happens.
  const wantedProfiles = new Set(wants.map((w) => w.profile.id));
  const candidates = existing.flatMap((e, i) => (e.profile && wantedProfiles.has(e.profile.id) ? [i] : []));

  // Best-first over which candidates to keep. A subset's lower bound (busy MIG devices and GPU
  // instances it destroys, ignoring compute-instance reshaping) orders the search; exact costs come
  // from matching, and the search stops once no remaining subset can tie the best plan found.
  // Per-subset work is allocation-free: profiles become small slots, counts live in one typed array.
  const slotOf = new Map<number, number>();
  for (const w of wants) if (!slotOf.has(w.profile.id)) slotOf.set(w.profile.id, slotOf.size);
  const wantedCount = new Int32Array(slotOf.size);
  for (const w of wants) {
    const slot = slotOf.get(w.profile.id) ?? 0;
    wantedCount[slot] = (wantedCount[slot] ?? 0) + 1;
  }
  const m = candidates.length;
  const candidateSlot = new Int32Array(m);
  const candidateBusy = new Int32Array(m);
  candidates.forEach((e, k) => {
    candidateSlot[k] = slotOf.get(existing[e]?.profile?.id ?? -1) ?? 0;
    candidateBusy[k] = existing[e]?.busyCis ?? 0;
  });
  // What every subset destroys anyway: the GIs that are not candidates.
  const isCandidate = new Set(candidates);
  const fixedBusy = existing.reduce((n, e, i) => n + (isCandidate.has(i) ? 0 : e.busyCis), 0);
  const fixedDestroyed = existing.length - m;
  const kept = new Int32Array(slotOf.size);
  const subsets: { readonly bits: number; readonly bound: Cost }[] = [];
  for (let bits = (1 << m) - 1; bits >= 0; bits--) {
    kept.fill(0);
    let fits = true;
    let busy = fixedBusy;
    let destroyed = fixedDestroyed;
    for (let k = 0; k < m; k++) {
      if (bits & (1 << k)) {
        const slot = candidateSlot[k] ?? 0;
        kept[slot] = (kept[slot] ?? 0) + 1;
        if ((kept[slot] ?? 0) > (wantedCount[slot] ?? 0)) fits = false;
      } else {
        busy += candidateBusy[k] ?? 0;
        destroyed++;
      }
    }
    if (fits) subsets.push({ bits, bound: [busy, destroyed, 0] });
  }
  // Stable: among equal bounds, larger bit patterns (enumerated first) stay first.
  subsets.sort((a, b) => compareCost(a.bound, b.bound));

  interface Choice {
    readonly kept: readonly number[];
    readonly pairs: ReadonlyMap<number, number>;
    readonly cost: Cost;
    readonly packing: Packing;
  }
  let chosen: Choice | null = null;
  for (const { bits, bound } of subsets) {
    if (chosen && compareCost(bound, chosen.cost) > 0) break;
    const keptGis = candidates.filter((_, k) => (bits & (1 << k)) !== 0);
    const matching = matchKept(keptGis, existing, wants);
    if (!matching) continue;
    const cost: Cost = [bound[0] + matching.cost[0], bound[1], matching.cost[2]];
    if (chosen && compareCost(cost, chosen.cost) > 0) continue;
    let free = fullMask(geometry);
    for (const e of keptGis) free &= ~(existing[e]?.mask ?? 0);
    const pairedWants = new Set(matching.pairs.values());
    const todo = wants.flatMap((_, w) => (pairedWants.has(w) ? [] : [w]));
    const packing = pack(geometry, free, wants, todo);
    if (!packing) continue;
    const order = chosen ? compareCost(cost, chosen.cost) : -1;
    if (order < 0 || (order === 0 && chosen && packing.score > chosen.packing.score)) {
      chosen = { kept: keptGis, pairs: matching.pairs, cost, packing };
    }
  }
  if (!chosen) return infeasible(describeNoFit(wants));

  const { packing } = chosen;
  const keptSet = new Set(chosen.kept);
  const keep: KeepStep[] = [];
  for (const e of chosen.kept) {
    const ex = existing[e];
    const want = wants[chosen.pairs.get(e) ?? -1];
    if (!ex || !want) continue;
    const diff = diffComputeInstances(ex.state.computeInstances, want.cis);
    keep.push({
      giId: ex.state.giId,
      profileId: ex.state.profileId,
      profileName: want.profile.name,
      placement: ex.state.placement,
      keepComputeInstances: diff.keep.map((ci) => existingCi(ex.profile, ci)),
      destroyComputeInstances: diff.destroy.map((ci) => existingCi(ex.profile, ci)),
      createComputeInstances: diff.create.map((id) => ({ profileId: id, name: ciName(want.profile, id) })),
    });
  }
  keep.sort((a, b) => a.placement.start - b.placement.start);
  const destroy = existing.filter((_, i) => !keptSet.has(i)).map(destroyStep);
  const create: CreateStep[] = [];
  for (const [w, start] of packing.starts) {
    const want = wants[w];
    if (!want) continue;
    create.push({
      profileId: want.profile.id,
      profileName: want.profile.name,
      placement: { start, size: want.profile.memorySlices },
      pinned: want.start !== null,
      computeInstances: want.cis.map((id) => ({ profileId: id, name: ciName(want.profile, id) })),
    });
  }
  create.sort((a, b) => a.placement.start - b.placement.start);

  const after: SlotMapInstance[] = [
    ...keep.map((k) => ({ profileId: k.profileId, placement: k.placement })),
    ...create.map((c) => ({ profileId: c.profileId, placement: c.placement })),
  ];
  let afterFree = fullMask(geometry);
  for (const a of after) afterFree &= ~placementMask(a.placement.start, a.placement.size);
  const ciChanges = keep.some((k) => k.destroyComputeInstances.length > 0 || k.createComputeInstances.length > 0);
  return {
    gpu,
    feasible: true,
    changed: destroy.length > 0 || create.length > 0 || modeChange !== null || ciChanges,
    modeChange,
    keep,
    destroy,
    create,
    busyDestroyed: chosen.cost[0],
    slotsBefore,
    slotsAfter: renderSlotMap(geometry, after),
    largestPlaceableAfter: largestPlaceable(geometry, afterFree),
  };
}

function largestPlaceable(geometry: GpuGeometry, free: number): string | null {
  const p = geometry.profiles.find((profile) =>
    profile.placements.some((s) => {
      const m = placementMask(s, profile.memorySlices);
      return (m & free) === m;
    }),
  );
  return p ? p.name : null;
}

export interface PlanTarget {
  readonly gpu: HostGpu;
  readonly desired: DesiredLayout;
}

/** Plans every selected GPU of a host; the host plan is feasible only if every GPU's is. */
export function planHost(targets: readonly PlanTarget[]): HostPlan {
  const gpus = targets.map(({ gpu, desired }): GpuPlan => {
    const ref = { index: gpu.index, uuid: gpu.uuid, model: gpu.model };
    if (gpu.geometry === null) {
      if (desired.mode === "disabled") {
        return {
          gpu: ref,
          feasible: true,
          changed: false,
          modeChange: null,
          keep: [],
          destroy: [],
          create: [],
          busyDestroyed: 0,
          slotsBefore: "[not MIG-capable]",
          slotsAfter: "[not MIG-capable]",
          largestPlaceableAfter: null,
        };
      }
      return { gpu: ref, feasible: false, reason: `${gpu.model} is not MIG-capable`, slotsBefore: "[not MIG-capable]" };
    }
    return planGpu({ gpu: ref, geometry: gpu.geometry, layout: gpu.layout, desired });
  });
  return { feasible: gpus.every((g) => g.feasible), gpus };
}
