// Lower bounds on the GPUs a demand needs (reference/scheduling.md §5.1), for
// reporting "GPUs above optimum": the memory, compute and large-item bounds,
// and the configuration LP (Gilmore–Gomory) over every maximal legal layout
// of one GPU. The LP is solved through its dual (max n·y s.t. every
// configuration's y-sum ≤ 1, y ≥ 0), whose slack basis is feasible, with
// Bland's rule; the answer is then re-certified in exact terms: y is scaled
// until every configuration's constraint holds, so n·y is a valid lower
// bound whatever rounding the simplex did.

import { placementMask } from "../mig/geometry.js";
import type { GpuGeometry } from "../mig/types.js";

/** Instances wanted per profile ID. */
export type DemandCounts = ReadonlyMap<number, number>;

interface Configurations {
  readonly undominated: readonly Int32Array[];
  readonly saturated: readonly Int32Array[];
}

const configurationCache = new WeakMap<GpuGeometry, Configurations>();

function configurations(geometry: GpuGeometry): Configurations {
  let c = configurationCache.get(geometry);
  if (!c) {
    c = enumerate(geometry);
    configurationCache.set(geometry, c);
  }
  return c;
}

/**
 * The multisets of instances one GPU can hold that no other multiset
 * dominates (counts per index of `geometry.profiles`): enough for the
 * configuration LP, since a dominated configuration is never needed.
 */
export function maximalConfigurations(geometry: GpuGeometry): readonly Int32Array[] {
  return configurations(geometry).undominated;
}

/**
 * The multisets of layouts to which no instance can be added (what
 * reference §3.1 counts: 14 without 1g×2mem and +me, 38 with 1g×2mem). A
 * saturated layout can still be dominated: 3g@0 + 2g@4 + 1g@6 is full, yet
 * 3g@4 + 2g@0 + 1g@2 + 1g@3 holds one more 1g.
 */
export function saturatedConfigurations(geometry: GpuGeometry): readonly Int32Array[] {
  return configurations(geometry).saturated;
}

function enumerate(geometry: GpuGeometry): Configurations {
  const profiles = geometry.profiles;
  const placements: { p: number; mask: number }[] = [];
  profiles.forEach((profile, p) => {
    for (const start of profile.placements) placements.push({ p, mask: placementMask(start, profile.memorySlices) });
  });
  const seen = new Map<string, Int32Array>();
  const saturated = new Map<string, Int32Array>();
  const counts = new Int32Array(profiles.length);
  const fits = (i: number, used: number, compute: number, media: boolean) => {
    const { p, mask } = placements[i] as { p: number; mask: number };
    const profile = profiles[p];
    return (
      profile !== undefined &&
      (mask & used) === 0 &&
      (counts[p] as number) < profile.maxInstances &&
      !(profile.mediaExtensions && media) &&
      compute + profile.sliceCount <= geometry.computeSliceCount
    );
  };
  const walk = (from: number, used: number, compute: number, media: boolean) => {
    const key = counts.join(",");
    seen.set(key, Int32Array.from(counts));
    let extendable = false;
    for (let i = 0; i < placements.length; i++) {
      if (!fits(i, used, compute, media)) continue;
      extendable = true;
      if (i < from) continue;
      const { p, mask } = placements[i] as { p: number; mask: number };
      const profile = profiles[p] as (typeof profiles)[number];
      counts[p] = (counts[p] as number) + 1;
      walk(i + 1, used | mask, compute + profile.sliceCount, media || profile.mediaExtensions);
      counts[p] = (counts[p] as number) - 1;
    }
    if (!extendable) saturated.set(key, Int32Array.from(counts));
  };
  walk(0, 0, 0, false);
  const all = [...seen.values()];
  // Distinct vectors (deduplicated above): a is dominated when another holds at least as much of everything.
  const dominated = (a: Int32Array, b: Int32Array) => a !== b && a.every((x, i) => x <= (b[i] as number));
  return { undominated: all.filter((a) => !all.some((b) => dominated(a, b))), saturated: [...saturated.values()] };
}

export interface LowerBounds {
  /** ⌈Σ n_p·memorySlices_p / M⌉, and ⌈n_p / most per GPU⌉ per profile (1g can never use slice 7). */
  readonly memory: number;
  /** ⌈Σ n_p·computeSlices_p / C⌉. */
  readonly compute: number;
  /** Full-GPU items each need a GPU; the rest of the ≥ half-GPU items fit at most k to a GPU. */
  readonly largeItems: number;
  /** ⌈certified value of the configuration LP⌉. */
  readonly configurationLp: number;
  /** The LP's value before rounding up. */
  readonly configurationLpValue: number;
  /** The largest of the above: no packing uses fewer GPUs. */
  readonly best: number;
  /** Instances no GPU of the model can hold (profiles the model lacks). */
  readonly unplaceable: number;
}

function vectorOf(geometry: GpuGeometry, counts: DemandCounts): { n: Float64Array; unplaceable: number } {
  const n = new Float64Array(geometry.profiles.length);
  let unplaceable = 0;
  for (const [id, k] of counts) {
    const i = geometry.profiles.findIndex((p) => p.id === id);
    if (i < 0) unplaceable += k;
    else n[i] = (n[i] as number) + k;
  }
  return { n, unplaceable };
}

export function lowerBounds(geometry: GpuGeometry, counts: DemandCounts): LowerBounds {
  const { n, unplaceable } = vectorOf(geometry, counts);
  const profiles = geometry.profiles;
  const configs = maximalConfigurations(geometry);
  const mostPerGpu = profiles.map((_, p) => Math.max(0, ...configs.map((c) => c[p] as number)));

  let memSlices = 0;
  let computeSlices = 0;
  let perProfile = 0;
  profiles.forEach((profile, p) => {
    const k = n[p] as number;
    memSlices += k * profile.memorySlices;
    computeSlices += k * profile.sliceCount;
    const most = mostPerGpu[p] as number;
    if (k > 0 && most > 0) perProfile = Math.max(perProfile, Math.ceil(k / most));
  });
  const memory = Math.max(Math.ceil(memSlices / geometry.memorySliceCount), perProfile);
  const compute = Math.ceil(computeSlices / geometry.computeSliceCount);

  // Large items: a full-GPU profile shares its GPU with nothing; of the profiles taking at least half
  // the memory slices, a GPU holds at most `k` (2 on 8-slice GPUs: 4g+3g or 3g+3g, §5.1).
  const full = profiles.map((p) => p.memorySlices >= geometry.memorySliceCount);
  const big = profiles.map((p, i) => !full[i] && 2 * p.memorySlices >= geometry.memorySliceCount);
  let nFull = 0;
  let nBig = 0;
  let perBig = 0;
  profiles.forEach((_, p) => {
    const k = n[p] as number;
    if (full[p]) nFull += k;
    if (big[p]) {
      nBig += k;
      const most = mostPerGpu[p] as number;
      if (k > 0 && most > 0) perBig = Math.max(perBig, Math.ceil(k / most));
    }
  });
  const kBig = Math.max(
    0,
    ...configs
      .filter((c) => !c.some((x, i) => x > 0 && full[i]))
      .map((c) => c.reduce((a, x, i) => a + (big[i] ? x : 0), 0)),
  );
  const largeItems = nFull + Math.max(perBig, kBig > 0 ? Math.ceil(nBig / kBig) : 0);

  const lp = configurationLp(configs, n);
  const configurationLp_ = Math.ceil(lp - 1e-7);
  return {
    memory,
    compute,
    largeItems,
    configurationLp: configurationLp_,
    configurationLpValue: lp,
    best: Math.max(memory, compute, largeItems, configurationLp_),
    unplaceable,
  };
}

/**
 * Value of min Σ x_c s.t. Σ_c a_pc x_c ≥ n_p, x ≥ 0, through its dual;
 * certified (see the file comment). Profiles no configuration holds are left out.
 */
export function configurationLp(configs: readonly Int32Array[], n: Float64Array): number {
  const vars: number[] = [];
  n.forEach((k, p) => {
    if (k > 0 && configs.some((c) => (c[p] as number) > 0)) vars.push(p);
  });
  const k = vars.length;
  const m = configs.length;
  if (k === 0 || m === 0) return 0;
  // Tableau rows: m constraints [a_c(vars) | I | 1]; objective row: [−n | 0 | 0].
  const width = k + m + 1;
  const rows: Float64Array[] = configs.map((c, r) => {
    const row = new Float64Array(width);
    vars.forEach((p, j) => {
      row[j] = c[p] as number;
    });
    row[k + r] = 1;
    row[width - 1] = 1;
    return row;
  });
  const obj = new Float64Array(width);
  vars.forEach((p, j) => {
    obj[j] = -(n[p] as number);
  });
  const basis = Array.from({ length: m }, (_, r) => k + r);
  const EPS = 1e-12;
  for (let iter = 0; iter < 10_000; iter++) {
    // Bland: the lowest-index column that improves the objective.
    let enter = -1;
    for (let j = 0; j < width - 1; j++) {
      if ((obj[j] as number) < -EPS) {
        enter = j;
        break;
      }
    }
    if (enter < 0) break;
    let leave = -1;
    let best = Number.POSITIVE_INFINITY;
    for (let r = 0; r < m; r++) {
      const a = (rows[r] as Float64Array)[enter] as number;
      if (a <= EPS) continue;
      const ratio = ((rows[r] as Float64Array)[width - 1] as number) / a;
      if (ratio < best - EPS || (Math.abs(ratio - best) <= EPS && (basis[r] as number) < (basis[leave] as number))) {
        best = ratio;
        leave = r;
      }
    }
    if (leave < 0) break; // unbounded cannot happen: every variable appears in some configuration
    const pivotRow = rows[leave] as Float64Array;
    const pivot = pivotRow[enter] as number;
    for (let j = 0; j < width; j++) pivotRow[j] = (pivotRow[j] as number) / pivot;
    for (const row of [...rows, obj]) {
      if (row === pivotRow) continue;
      const f = row[enter] as number;
      if (f === 0) continue;
      for (let j = 0; j < width; j++) row[j] = (row[j] as number) - f * (pivotRow[j] as number);
    }
    basis[leave] = enter;
  }
  const y = new Float64Array(k);
  basis.forEach((b, r) => {
    if (b < k) y[b] = Math.max(0, (rows[r] as Float64Array)[width - 1] as number);
  });
  // Certify: scale y into the feasible region exactly as checked here.
  let worst = 0;
  for (const c of configs) {
    let s = 0;
    vars.forEach((p, j) => {
      s += (c[p] as number) * (y[j] as number);
    });
    worst = Math.max(worst, s);
  }
  const scale = worst > 1 ? 1 / worst : 1;
  let value = 0;
  vars.forEach((p, j) => {
    value += (n[p] as number) * (y[j] as number) * scale;
  });
  return value;
}
