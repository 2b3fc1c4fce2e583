// The recent request mix: a decaying histogram of profile classes
// (`profileClassKey`) whose normalised counts are the weights w_p of the
// fragmentation measure (reference/scheduling.md §5.2, FGD's "target
// workload" popularity). Old requests fade with a half-life, so the weights
// follow the mix as it drifts; a small uniform prior keeps every class
// weighted before anything has been seen.

/** Profile-class weights as placement reads them. Immutable: a new mix is a new object. */
export interface DemandWeights {
  readonly byKey: ReadonlyMap<string, number>;
  /** Weight of a class the histogram has not seen (the prior's share). */
  readonly fallback: number;
}

export function weightOf(weights: DemandWeights, key: string): number {
  return weights.byKey.get(key) ?? weights.fallback;
}

/** Every class weighs the same: what the scheduler assumes before it has seen requests. */
export function uniformWeights(): DemandWeights {
  return { byKey: new Map(), fallback: 1 };
}

/** No fragmentation term at all: the "best fit" baseline. */
export function zeroWeights(): DemandWeights {
  return { byKey: new Map(), fallback: 0 };
}

export function fixedWeights(byKey: Readonly<Record<string, number>>, fallback = 0): DemandWeights {
  return { byKey: new Map(Object.entries(byKey)), fallback };
}

export interface DemandHistogramOptions {
  /** Requests this old weigh half as much as new ones. */
  readonly halfLifeMs: number;
  /** Pseudo-count every class gets, so an empty history is uniform. */
  readonly priorCount: number;
  /**
   * Recompute the weights after this many recorded requests (or when
   * `refreshIntervalMs` has passed): placement caches per-geometry tables per
   * weights object, so a new object on every request would rebuild them.
   */
  readonly refreshEvery: number;
  readonly refreshIntervalMs: number;
}

export const DEFAULT_DEMAND_OPTIONS: DemandHistogramOptions = {
  halfLifeMs: 10 * 60_000,
  priorCount: 2,
  refreshEvery: 256,
  refreshIntervalMs: 1000,
};

/**
 * Exponentially decayed counts. Instead of decaying every bin at every
 * request, each request adds 2^((t − t0)/halfLife) and reads divide by the
 * current factor (the usual forward-decay trick); bins are rescaled when the
 * factor grows large.
 */
export class DemandHistogram {
  private readonly options: DemandHistogramOptions;
  private readonly bins = new Map<string, number>();
  private total = 0;
  private originMs: number | null = null;
  private sinceRefresh = 0;
  /** NaN until the first read: the interval counts from then. */
  private refreshedAtMs = Number.NaN;
  private snapshot: DemandWeights;

  constructor(options: Partial<DemandHistogramOptions> = {}) {
    this.options = { ...DEFAULT_DEMAND_OPTIONS, ...options };
    this.snapshot = uniformWeights();
  }

  /** Records one request that maps to these classes (one per GPU model it could land on), `1/keys.length` each. */
  record(keys: readonly string[], nowMs: number): void {
    if (keys.length === 0) return;
    if (this.originMs === null) this.originMs = nowMs;
    let factor = 2 ** ((nowMs - this.originMs) / this.options.halfLifeMs);
    if (factor > 1e12) {
      this.rescale(factor);
      this.originMs = nowMs;
      factor = 1;
    }
    const share = factor / keys.length;
    for (const key of keys) this.bins.set(key, (this.bins.get(key) ?? 0) + share);
    this.total += factor;
    this.sinceRefresh++;
  }

  private rescale(factor: number): void {
    for (const [k, v] of this.bins) this.bins.set(k, v / factor);
    this.total /= factor;
  }

  /** Decayed request count per class (for metrics and tests). */
  counts(nowMs: number): Map<string, number> {
    const factor = this.originMs === null ? 1 : 2 ** ((nowMs - this.originMs) / this.options.halfLifeMs);
    return new Map([...this.bins].map(([k, v]) => [k, v / factor]));
  }

  /** The current weights; the same object until a refresh is due. */
  weights(nowMs: number): DemandWeights {
    if (Number.isNaN(this.refreshedAtMs)) this.refreshedAtMs = nowMs;
    const due =
      this.sinceRefresh >= this.options.refreshEvery ||
      (this.sinceRefresh > 0 && nowMs - this.refreshedAtMs >= this.options.refreshIntervalMs);
    if (due) this.refresh(nowMs);
    return this.snapshot;
  }

  /** Recomputes the weights now. */
  refresh(nowMs: number): DemandWeights {
    // Weights are relative: divide by (total + prior·classes) so they sum to about 1 over the classes seen.
    const prior = this.options.priorCount;
    const denom = this.total + prior * Math.max(1, this.bins.size);
    const byKey = new Map<string, number>();
    for (const [k, v] of this.bins) byKey.set(k, (v + prior) / denom);
    this.snapshot = { byKey, fallback: prior / denom };
    this.sinceRefresh = 0;
    this.refreshedAtMs = nowMs;
    return this.snapshot;
  }
}
