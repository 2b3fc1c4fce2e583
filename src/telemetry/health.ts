// GPU health verdicts: a pure function of what the sampler saw and the XIDs the GPU reported,
// after DCGM's health watches (reference/monitoring.md §2.2): a lost GPU, a fatal XID, volatile
// uncorrectable ECC errors or a failed row remap make it unhealthy; pending remaps or retirements,
// warning XIDs and running near the slowdown temperature degrade it.
import { lookupXid, type XidSeverity } from "./xid-catalog.js";

export type HealthStateName = "healthy" | "degraded" | "unhealthy";

export interface HealthVerdict {
  readonly state: HealthStateName;
  /** One line each, worst first. */
  readonly reasons: readonly string[];
}

export interface HealthThresholds {
  /** How long an XID keeps affecting health after it was seen. */
  readonly xidHoldMs: number;
  /** Degraded at or above slowdown temperature minus this margin. */
  readonly temperatureMarginC: number;
}

export const DEFAULT_HEALTH_THRESHOLDS: HealthThresholds = {
  xidHoldMs: 3_600_000,
  temperatureMarginC: 5,
};

export interface XidRecord {
  readonly code: number;
  readonly atMs: number;
  readonly gpuInstanceId: number | undefined;
}

export interface GpuHealthInput {
  readonly lost: boolean;
  readonly xids: readonly XidRecord[];
  readonly eccUncorrectedVolatile: number | undefined;
  readonly remappedRows: { readonly pending: boolean; readonly failure: boolean } | undefined;
  readonly retiredPagesPending: boolean | undefined;
  readonly temperatureC: number | undefined;
  readonly slowdownTemperatureC: number | undefined;
  readonly nowMs: number;
}

const RANK: Record<HealthStateName, number> = { healthy: 0, degraded: 1, unhealthy: 2 };
const STATE_OF: Record<XidSeverity, HealthStateName> = { app: "healthy", warn: "degraded", fatal: "unhealthy" };

export function worseOf(a: HealthStateName, b: HealthStateName): HealthStateName {
  return RANK[a] >= RANK[b] ? a : b;
}

export function gpuHealth(input: GpuHealthInput, thresholds: HealthThresholds): HealthVerdict {
  const found: { state: HealthStateName; reason: string }[] = [];
  if (input.lost)
    found.push({ state: "unhealthy", reason: "GPU has fallen off the bus (NVML: GPU_IS_LOST): reboot the node" });
  const recent = input.xids.filter((x) => input.nowMs - x.atMs < thresholds.xidHoldMs);
  // The latest of each code speaks for it.
  const latest = new Map<number, XidRecord>();
  for (const x of recent) {
    const prev = latest.get(x.code);
    if (!prev || prev.atMs <= x.atMs) latest.set(x.code, x);
  }
  for (const x of latest.values()) {
    const entry = lookupXid(x.code);
    const state = STATE_OF[entry.severity];
    if (state === "healthy") continue;
    const where = x.gpuInstanceId === undefined ? "" : ` on GPU instance ${x.gpuInstanceId}`;
    found.push({
      state,
      reason: `XID ${x.code} (${entry.description})${where} at ${new Date(x.atMs).toISOString()}: ${entry.action}`,
    });
  }
  if ((input.eccUncorrectedVolatile ?? 0) > 0)
    found.push({
      state: "unhealthy",
      reason: `${input.eccUncorrectedVolatile} uncorrectable ECC errors since the last reset: drain and reset the GPU`,
    });
  if (input.remappedRows?.failure)
    found.push({ state: "unhealthy", reason: "row remapping failed: drain the GPU; RMA if it persists" });
  if (input.remappedRows?.pending)
    found.push({ state: "degraded", reason: "row remapping pending: reset the GPU at the next idle" });
  if (input.retiredPagesPending)
    found.push({ state: "degraded", reason: "page retirement pending: reset the GPU at the next idle" });
  if (
    input.temperatureC !== undefined &&
    input.slowdownTemperatureC !== undefined &&
    input.temperatureC >= input.slowdownTemperatureC - thresholds.temperatureMarginC
  )
    found.push({
      state: "degraded",
      reason: `temperature ${input.temperatureC} C is within ${thresholds.temperatureMarginC} C of the slowdown threshold (${input.slowdownTemperatureC} C)`,
    });
  found.sort((a, b) => RANK[b.state] - RANK[a.state]);
  const state = found.reduce<HealthStateName>((s, f) => worseOf(s, f.state), "healthy");
  return { state, reasons: found.map((f) => f.reason) };
}

/** XIDs older than the hold window are of no further use. */
export function pruneXids(xids: readonly XidRecord[], nowMs: number, thresholds: HealthThresholds): XidRecord[] {
  return xids.filter((x) => nowMs - x.atMs < thresholds.xidHoldMs);
}
