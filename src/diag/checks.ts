// Every check, in the order the checklist shows them: the driver first, then the GPUs, MIG, the
// fabric, and the standard level's windowed checks last.
import { eccCheck, memoryRepairCheck } from "./check-ecc.js";
import { errorRatesCheck } from "./check-error-rates.js";
import { fabricErrorRatesCheck, fabricPortsCheck } from "./check-fabric.js";
import { gpuReachableCheck } from "./check-gpu-health.js";
import { migLayoutCheck, migLeasesCheck } from "./check-mig.js";
import { gpuCountCheck, migPermissionsCheck, nvmlLibraryCheck, nvmlVersionsCheck } from "./check-nvml.js";
import { pcieCheck } from "./check-pcie.js";
import { throttleCheck, throttleResidencyCheck } from "./check-throttle.js";
import { topologyCheck } from "./check-topology.js";
import { xidBurstCheck, xidCheck } from "./check-xid.js";
import type { Check, CheckLevel } from "./types.js";

// Each check's facts type differs; the runner only hands a check its own gather's result.
// biome-ignore lint/suspicious/noExplicitAny: a heterogeneous registry of Check<F>
export type AnyCheck = Check<any>;

export const ALL_CHECKS: readonly AnyCheck[] = [
  nvmlLibraryCheck,
  nvmlVersionsCheck,
  migPermissionsCheck,
  gpuCountCheck,
  gpuReachableCheck,
  xidCheck,
  eccCheck,
  memoryRepairCheck,
  throttleCheck,
  pcieCheck,
  migLayoutCheck,
  migLeasesCheck,
  fabricPortsCheck,
  topologyCheck,
  xidBurstCheck,
  errorRatesCheck,
  throttleResidencyCheck,
  fabricErrorRatesCheck,
];

/** The checks a level runs: quick runs the quick ones, standard runs all. */
export function checksForLevel(level: CheckLevel, checks: readonly AnyCheck[] = ALL_CHECKS): AnyCheck[] {
  return checks.filter((c) => level === "standard" || c.level === "quick");
}
