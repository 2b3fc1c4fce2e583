// Thermal and power throttling: now (quick) and how much of the window (standard). Hardware
// slowdowns (thermal emergency, power brake) halve clocks and point at cooling or power supply
// faults: they fail. Software thermal slowdown and the power cap warn: the GPU is at its limits.
import type { ClockEventReason } from "../nvml/index.js";
import type { DiagConfig } from "./config.js";
import type { ClockFacts, GpuProbe, ThrottleResidencyFacts } from "./facts.js";
import { type Finding, fail, fold, gpuLabel, listing, pass, percent, unreadable, warn } from "./findings.js";
import type { Check, Verdict } from "./types.js";

const HW_REASONS: readonly ClockEventReason[] = ["hwSlowdown", "hwThermalSlowdown", "hwPowerBrakeSlowdown"];
const SW_REASONS: readonly ClockEventReason[] = ["swThermalSlowdown", "swPowerCap"];

const REASON_WORDS: Readonly<Partial<Record<ClockEventReason, string>>> = {
  hwSlowdown: "hardware slowdown",
  hwThermalSlowdown: "hardware thermal slowdown",
  hwPowerBrakeSlowdown: "hardware power brake",
  swThermalSlowdown: "software thermal slowdown",
  swPowerCap: "power cap",
};

const HW_FIX =
  "A hardware slowdown is cutting clocks hard: check the GPU's cooling (fans, airflow, inlet temperature) and the power supply/power brake signal (ipmitool sel list); drain the GPU if it persists.";
const THERMAL_FIX =
  "The GPU is slowing itself to stay under its temperature limit: check cooling and airflow; the work runs slower until it cools.";
const POWER_FIX =
  "The GPU is held at its power limit: expected under heavy load; if the limit is lower than the board's default (nvidia-smi -q -d POWER), raise it.";

function swFix(reasons: readonly ClockEventReason[]): string {
  return reasons.includes("swThermalSlowdown") ? THERMAL_FIX : POWER_FIX;
}

export const throttleCheck: Check<readonly GpuProbe<ClockFacts>[]> = {
  id: "gpu.throttle",
  title: "No thermal or power throttling now",
  level: "quick",
  reads: [
    "nvmlDeviceGetCurrentClocksEventReasons",
    "nvmlDeviceGetTemperatureV",
    "nvmlDeviceGetPowerUsage",
    "nvmlDeviceGetEnforcedPowerLimit",
  ],
  gather: (ctx) => ctx.nvml("clocks"),
  verdict: throttleVerdict,
};

export function throttleVerdict(gpus: readonly GpuProbe<ClockFacts>[]): Verdict {
  const findings: Finding[] = gpus.map((g) => {
    const bad = unreadable(g);
    if (bad || !g.facts) return bad as Finding;
    const f = g.facts;
    const label = gpuLabel(g.index);
    const watts = (mw: number | undefined) => (mw === undefined ? "n/a" : `${Math.round(mw / 1000)} W`);
    const state = `${f.temperatureC ?? "n/a"} °C (slowdown at ${f.slowdownC ?? "n/a"} °C), ${watts(f.powerMilliwatts)} of ${watts(f.powerLimitMilliwatts)}`;
    if (f.reasons === undefined) return pass(`${label}: throttle reasons not reported; ${state}`);
    const hw = HW_REASONS.filter((r) => f.reasons?.includes(r));
    const sw = SW_REASONS.filter((r) => f.reasons?.includes(r));
    const words = (rs: readonly ClockEventReason[]) => listing(rs.map((r) => REASON_WORDS[r] ?? r));
    if (hw.length > 0) return fail(`${label}: ${words(hw)} now; ${state}`, HW_FIX);
    if (sw.length > 0) return warn(`${label}: ${words(sw)} now; ${state}`, swFix(sw));
    return pass(`${label}: not throttled; ${state}`);
  });
  return fold(findings, { passSummary: "no GPU is throttled", empty: { status: "skip", text: "no GPUs" } });
}

export const throttleResidencyCheck: Check<readonly GpuProbe<ThrottleResidencyFacts>[]> = {
  id: "gpu.throttle-residency",
  title: "Throttling residency over the window",
  level: "standard",
  windowed: true,
  reads: ["nvmlDeviceGetCurrentClocksEventReasons, sampled over the window"],
  gather: (ctx) => ctx.nvml("clocks-window"),
  verdict: throttleResidencyVerdict,
};

export function throttleResidencyVerdict(
  gpus: readonly GpuProbe<ThrottleResidencyFacts>[],
  config: DiagConfig,
): Verdict {
  const limit = config.thresholds.throttleResidencyWarn;
  const findings: Finding[] = gpus.map((g) => {
    const bad = unreadable(g);
    if (bad || !g.facts) return bad as Finding;
    const label = gpuLabel(g.index);
    const { residency, samples } = g.facts;
    const share = (rs: readonly ClockEventReason[]) =>
      rs.filter((r) => (residency[r] ?? 0) > 0).map((r) => `${REASON_WORDS[r]} ${percent(residency[r] ?? 0)}`);
    const hw = share(HW_REASONS);
    if (hw.length > 0) return fail(`${label}: ${listing(hw)} of ${samples} samples`, HW_FIX);
    const swOver = SW_REASONS.filter((r) => (residency[r] ?? 0) >= limit);
    if (swOver.length > 0) {
      return warn(
        `${label}: ${listing(share(swOver))} of ${samples} samples (warning at ${percent(limit)})`,
        swFix(swOver),
      );
    }
    const sw = share(SW_REASONS);
    return pass(`${label}: ${sw.length > 0 ? listing(sw) : "no throttling"} over ${samples} samples`);
  });
  return fold(findings, {
    passSummary: "no GPU throttled over the window",
    empty: { status: "skip", text: "no GPUs" },
  });
}
