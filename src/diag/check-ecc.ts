// GPU memory: uncorrectable ECC errors since the driver loaded, and the repairs the GPU made or
// failed to make (row remapping on Ampere and later, page retirement before). Thresholds after
// DCGM's MEM health watch (reference/monitoring.md §2.2).
import type { DiagConfig } from "./config.js";
import type { GpuProbe, MemoryFacts } from "./facts.js";
import { type Finding, fail, fold, gpuLabel, pass, unreadable, warn } from "./findings.js";
import type { Check, Verdict } from "./types.js";

const DBE_FIX =
  "Uncorrectable memory errors since the driver loaded: drain the GPU, reset it (nvidia-smi -r -i <index>) so the bad rows are remapped, then run tessera diag again; RMA the GPU if errors return.";
const ECC_OFF_FIX =
  "ECC is off, so memory errors go undetected: enable it (nvidia-smi -i <index> -e 1) and reset the GPU.";
const LIFETIME_DBE_FIX =
  "This GPU has had uncorrectable memory errors in its lifetime: check that its rows were remapped (gpu.memory-repair) and watch whether the count grows.";

export const eccCheck: Check<readonly GpuProbe<MemoryFacts>[]> = {
  id: "gpu.ecc",
  title: "No uncorrectable (double-bit) ECC errors",
  level: "quick",
  reads: ["nvmlDeviceGetEccMode", "nvmlDeviceGetTotalEccErrors (volatile and aggregate)"],
  gather: (ctx) => ctx.nvml("memory"),
  verdict: eccVerdict,
};

export function eccVerdict(gpus: readonly GpuProbe<MemoryFacts>[]): Verdict {
  const findings: Finding[] = gpus.map((g) => {
    const bad = unreadable(g);
    if (bad || !g.facts) return bad as Finding;
    const label = gpuLabel(g.index);
    const { ecc, eccMode } = g.facts;
    if (eccMode && !eccMode.current) return warn(`${label}: ECC is disabled`, ECC_OFF_FIX);
    const dbe = ecc.volatileUncorrected ?? 0;
    const counts = `volatile ${ecc.volatileCorrected ?? "n/a"} corrected / ${ecc.volatileUncorrected ?? "n/a"} uncorrected, lifetime ${ecc.aggregateCorrected ?? "n/a"} / ${ecc.aggregateUncorrected ?? "n/a"}`;
    if (dbe > 0) return fail(`${label}: ${dbe} uncorrectable ECC errors since the driver loaded (${counts})`, DBE_FIX);
    if ((ecc.aggregateUncorrected ?? 0) > 0) {
      return warn(
        `${label}: ${ecc.aggregateUncorrected} uncorrectable ECC errors in its lifetime (${counts})`,
        LIFETIME_DBE_FIX,
      );
    }
    return pass(`${label}: ${counts}`);
  });
  return fold(findings, {
    passSummary: "no uncorrectable ECC errors on any GPU",
    empty: { status: "skip", text: "no GPUs" },
  });
}

const REMAP_FAILED_FIX =
  "Row remapping failed: the GPU has run out of spare memory rows. Drain it and reset it; RMA the GPU if the failure stays after the reset.";
const REMAP_PENDING_FIX =
  "A memory row is waiting to be remapped: reset the GPU (nvidia-smi -r -i <index>) at its next idle moment, or reboot the node, to apply it.";
const REMAP_MANY_FIX =
  "Many rows were remapped for uncorrectable errors: the GPU's memory is wearing out; plan its replacement.";
const RETIRED_MANY_FIX =
  "Too many memory pages are retired: drain the GPU and RMA it (NVIDIA's page retirement limit is 64 pages).";
const RETIRED_PENDING_FIX =
  "A memory page is waiting to be retired: reset the GPU (or reboot) at its next idle moment to retire it.";

export const memoryRepairCheck: Check<readonly GpuProbe<MemoryFacts>[]> = {
  id: "gpu.memory-repair",
  title: "Row remapping and page retirement healthy",
  level: "quick",
  reads: ["nvmlDeviceGetRemappedRows", "nvmlDeviceGetRetiredPages", "nvmlDeviceGetRetiredPagesPendingStatus"],
  gather: (ctx) => ctx.nvml("memory"),
  verdict: memoryRepairVerdict,
};

export function memoryRepairVerdict(gpus: readonly GpuProbe<MemoryFacts>[], config: DiagConfig): Verdict {
  const t = config.thresholds;
  const findings: Finding[] = gpus.flatMap((g): Finding[] => {
    const bad = unreadable(g);
    if (bad || !g.facts) return [bad as Finding];
    const label = gpuLabel(g.index);
    const { remappedRows: rows, retiredPages: pages, migEnabled } = g.facts;
    const out: Finding[] = [];
    if (rows) {
      const counts = `${rows.corrected} rows remapped for correctable and ${rows.uncorrected} for uncorrectable errors`;
      if (rows.failureOccurred) out.push(fail(`${label}: row remapping failed (${counts})`, REMAP_FAILED_FIX));
      else if (rows.pending) out.push(warn(`${label}: a row remap is pending (${counts})`, REMAP_PENDING_FIX));
      else if (rows.uncorrected >= t.uncorrectableRemapsWarn) {
        out.push(warn(`${label}: ${counts} (warning at ${t.uncorrectableRemapsWarn})`, REMAP_MANY_FIX));
      }
    }
    const retired = (pages.singleBitEccPages ?? 0) + (pages.doubleBitEccPages ?? 0);
    const pageCounts = `${pages.singleBitEccPages ?? "n/a"} pages retired for single-bit and ${pages.doubleBitEccPages ?? "n/a"} for double-bit errors`;
    if (retired >= t.retiredPagesFail) {
      out.push(fail(`${label}: ${pageCounts} (failure at ${t.retiredPagesFail})`, RETIRED_MANY_FIX));
    } else if (pages.pending) {
      out.push(warn(`${label}: a page retirement is pending (${pageCounts})`, RETIRED_PENDING_FIX));
    }
    if (out.length > 0) return out;
    const remap = rows
      ? `${rows.corrected + rows.uncorrected} rows remapped, none pending`
      : migEnabled
        ? "row remapping not readable while MIG is enabled"
        : "no row remapping on this GPU";
    return [pass(`${label}: ${remap}; ${retired} pages retired`)];
  });
  return fold(findings, {
    passSummary: "no failed or pending memory repairs on any GPU",
    empty: { status: "skip", text: "no GPUs" },
  });
}
