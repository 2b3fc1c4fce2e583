// Error rates over the standard level's window: uncorrectable ECC errors that appear while we
// watch fail, a high corrected-error rate and PCIe replays above DCGM's bit-error-rate bound
// warn (reference/monitoring.md §2.2).
import type { DiagConfig } from "./config.js";
import type { CounterWindowFacts, GpuProbe } from "./facts.js";
import { type Finding, fail, fold, gpuLabel, pass, unreadable, warn } from "./findings.js";
import type { Check, Verdict } from "./types.js";

/** DCGM's PCIe replay bound per lane per minute (BER 1e-12), by link generation. */
const REPLAYS_PER_LANE_MINUTE: Readonly<Record<number, number>> = {
  1: 0.15,
  2: 0.3,
  3: 0.48,
  4: 0.96,
  5: 1.92,
  6: 3.84,
};

/** Replays per minute above which the link's bit error rate is worse than 1e-12 (DCGM PCIE watch). */
export function replayLimitPerMinute(generation: number, width: number): number {
  const perLane = REPLAYS_PER_LANE_MINUTE[Math.min(Math.max(generation, 1), 6)] ?? 0.15;
  return Math.ceil(perLane * width);
}

const DBE_FIX =
  "Uncorrectable memory errors appeared while we watched: drain the GPU now, reset it, and RMA it if they come back.";
const SBE_FIX =
  "Corrected memory errors are arriving fast: the GPU still works, but plan to drain and reset it, and watch for row remaps or XID 92/63.";
const REPLAY_FIX =
  "PCIe replays above the expected bit error rate: reseat the GPU or its riser/cable at the next maintenance; check dmesg for AER errors on its slot.";

export const errorRatesCheck: Check<readonly GpuProbe<CounterWindowFacts>[]> = {
  id: "gpu.error-rates",
  title: "ECC and PCIe error rates over the window",
  level: "standard",
  windowed: true,
  reads: [
    "nvmlDeviceGetTotalEccErrors at the window's start and end",
    "NVML_FI_DEV_PCIE_REPLAY_COUNTER at the window's start and end",
  ],
  gather: (ctx) => ctx.nvml("counters-window"),
  verdict: errorRatesVerdict,
};

export function errorRatesVerdict(gpus: readonly GpuProbe<CounterWindowFacts>[], config: DiagConfig): Verdict {
  const findings: Finding[] = gpus.flatMap((g): Finding[] => {
    const bad = unreadable(g);
    if (bad || !g.facts) return [bad as Finding];
    const label = gpuLabel(g.index);
    const { start, end } = g.facts;
    const minutes = Math.max(end.atMs - start.atMs, 1) / 60_000;
    const delta = (a: number | undefined, b: number | undefined) =>
      a === undefined || b === undefined ? undefined : Math.max(0, b - a);
    const dbe = delta(start.ecc.volatileUncorrected, end.ecc.volatileUncorrected);
    const sbe = delta(start.ecc.volatileCorrected, end.ecc.volatileCorrected);
    const replays = delta(start.replays, end.replays);
    const span = `${Math.round(minutes * 60)} s`;
    const out: Finding[] = [];
    if (dbe !== undefined && dbe > 0)
      out.push(fail(`${label}: ${dbe} new uncorrectable ECC errors in ${span}`, DBE_FIX));
    if (sbe !== undefined && sbe / minutes >= config.thresholds.sbePerMinuteWarn) {
      out.push(
        warn(
          `${label}: ${sbe} new corrected ECC errors in ${span} (${(sbe / minutes).toFixed(1)}/min, warning at ${config.thresholds.sbePerMinuteWarn}/min)`,
          SBE_FIX,
        ),
      );
    }
    const gen = end.link.generation ?? end.link.maxGeneration;
    const width = end.link.width ?? end.link.maxWidth;
    if (replays !== undefined && gen !== undefined && width !== undefined) {
      const limit = replayLimitPerMinute(gen, width);
      if (replays / minutes > limit) {
        out.push(
          warn(
            `${label}: ${replays} PCIe replays in ${span} (${(replays / minutes).toFixed(1)}/min, above ${limit}/min for Gen${gen} x${width})`,
            REPLAY_FIX,
          ),
        );
      }
    }
    if (out.length > 0) return out;
    return [
      pass(
        `${label}: ${dbe ?? "n/a"} uncorrectable, ${sbe ?? "n/a"} corrected ECC errors and ${replays ?? "n/a"} PCIe replays in ${span}`,
      ),
    ];
  });
  return fold(findings, {
    passSummary: "no new memory or PCIe errors on any GPU during the window",
    empty: { status: "skip", text: "no GPUs" },
  });
}
