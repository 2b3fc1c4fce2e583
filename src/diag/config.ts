// What a run is configured with: level, window, timeouts, expectations and thresholds. Defaults
// follow DCGM's health watches and NVIDIA's guidance (reference/monitoring.md §2.2) where those
// give a number; the rest are ours and say so.
import { InputError } from "../errors.js";
import { CHECK_LEVELS, type CheckLevel } from "./types.js";

export interface DiagThresholds {
  /** nvmlInit slower than this is a warning (persistence mode off, driver busy). Ours. */
  readonly slowInitMs: number;
  /** A GPU whose identity calls take longer than this is a warning (a GPU in trouble answers slowly). Ours. */
  readonly slowCallMs: number;
  /** Uncorrectable row remaps at or above this: warning (DCGM MEM). */
  readonly uncorrectableRemapsWarn: number;
  /** Retired pages (SBE + DBE) at or above this: failure (DCGM MEM). */
  readonly retiredPagesFail: number;
  /** Corrected (single-bit) ECC errors per minute over the window at or above this: warning. Ours. */
  readonly sbePerMinuteWarn: number;
  /** Share of samples with a software thermal or power-cap reason at or above this: warning. Ours. */
  readonly throttleResidencyWarn: number;
  /** This many XIDs of one code on one GPU within the window is a burst. Ours. */
  readonly xidBurstCount: number;
}

export const DEFAULT_THRESHOLDS: DiagThresholds = {
  slowInitMs: 2000,
  slowCallMs: 500,
  uncorrectableRemapsWarn: 512,
  retiredPagesFail: 63,
  sbePerMinuteWarn: 10,
  throttleResidencyWarn: 0.1,
  xidBurstCount: 3,
};

export const DEFAULT_WINDOW_MS = 30_000;
export const DEFAULT_CHECK_TIMEOUT_MS = 10_000;
export const DEFAULT_SAMPLE_INTERVAL_MS = 1000;
export const DEFAULT_XID_LOOKBACK_MS = 24 * 3_600_000;

export interface DiagConfig {
  readonly level: CheckLevel;
  /** Standard level's sampling window. */
  readonly windowMs: number;
  readonly sampleIntervalMs: number;
  /** Each check's limit on gathering its facts (windowed checks get the window on top). */
  readonly checkTimeoutMs: number;
  /** How far back kernel-log XIDs count as recent. */
  readonly xidLookbackMs: number;
  /** GPUs this host should have; undefined: not checked. */
  readonly expectedGpuCount: number | undefined;
  readonly thresholds: DiagThresholds;
}

export interface DiagConfigInput {
  readonly level?: CheckLevel;
  readonly windowMs?: number;
  readonly sampleIntervalMs?: number;
  readonly checkTimeoutMs?: number;
  readonly xidLookbackMs?: number;
  readonly expectedGpuCount?: number;
  readonly thresholds?: Partial<DiagThresholds>;
}

/** Longest sampling window a run (or an RPC) may ask for. */
export const MAX_WINDOW_MS = 3_600_000;

/** Defaults filled in; throws InputError naming the field that is out of range. */
export function resolveConfig(input: DiagConfigInput = {}): DiagConfig {
  const level = input.level ?? "quick";
  if (!CHECK_LEVELS.includes(level)) throw new InputError(`level: expected quick or standard, got "${level}"`);
  const positive = (field: string, value: number | undefined, fallback: number, max = Number.MAX_SAFE_INTEGER) => {
    if (value === undefined) return fallback;
    if (!Number.isFinite(value) || value <= 0 || value > max) {
      throw new InputError(
        `${field}: expected a number of milliseconds above 0${max < Number.MAX_SAFE_INTEGER ? ` and at most ${max}` : ""}, got ${value}`,
      );
    }
    return value;
  };
  if (
    input.expectedGpuCount !== undefined &&
    !(Number.isInteger(input.expectedGpuCount) && input.expectedGpuCount > 0)
  ) {
    throw new InputError(`expectedGpuCount: expected a positive whole number, got ${input.expectedGpuCount}`);
  }
  return {
    level,
    windowMs: level === "standard" ? positive("windowMs", input.windowMs, DEFAULT_WINDOW_MS, MAX_WINDOW_MS) : 0,
    sampleIntervalMs: positive("sampleIntervalMs", input.sampleIntervalMs, DEFAULT_SAMPLE_INTERVAL_MS),
    checkTimeoutMs: positive("checkTimeoutMs", input.checkTimeoutMs, DEFAULT_CHECK_TIMEOUT_MS),
    xidLookbackMs: positive("xidLookbackMs", input.xidLookbackMs, DEFAULT_XID_LOOKBACK_MS),
    expectedGpuCount: input.expectedGpuCount,
    thresholds: { ...DEFAULT_THRESHOLDS, ...input.thresholds },
  };
}
