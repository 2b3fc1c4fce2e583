// PCIe link of each GPU: at its maximum generation and width while it works. Idle GPUs train
// down to Gen1 to save power (as real ones do), so an idle GPU's link is not judged.
import type { GpuProbe, PcieFacts } from "./facts.js";
import { type Finding, fail, fold, gpuLabel, pass, unreadable, warn } from "./findings.js";
import type { Check, Verdict } from "./types.js";

const WIDTH_FIX =
  "The link trained with fewer lanes than it has: reseat the GPU (or its riser/cable) at the next maintenance; until then its host transfers run at a fraction of their speed.";
const GEN_FIX =
  "The link runs below its maximum generation under load: check the slot's BIOS PCIe setting and the riser; reseat the GPU if it persists after a reboot.";

export const pcieCheck: Check<readonly GpuProbe<PcieFacts>[]> = {
  id: "gpu.pcie",
  title: "PCIe link at full generation and width while busy",
  level: "quick",
  reads: [
    "nvmlDeviceGet{Curr,Max}PcieLink{Generation,Width}",
    "nvmlDeviceGetUtilizationRates",
    "nvmlDeviceGetComputeRunningProcesses_v3",
  ],
  gather: (ctx) => ctx.nvml("pcie"),
  verdict: pcieVerdict,
};

export function pcieVerdict(gpus: readonly GpuProbe<PcieFacts>[]): Verdict {
  const findings: Finding[] = gpus.map((g) => {
    const bad = unreadable(g);
    if (bad || !g.facts) return bad as Finding;
    const label = gpuLabel(g.index);
    const { link, utilizationPercent, processCount } = g.facts;
    const busy = (utilizationPercent ?? 0) > 0 || (processCount ?? 0) > 0;
    if (link.generation === undefined || link.width === undefined) return pass(`${label}: PCIe link not reported`);
    const now = `Gen${link.generation} x${link.width}`;
    const max = `Gen${link.maxGeneration ?? "?"} x${link.maxWidth ?? "?"}`;
    const load = `${utilizationPercent ?? "n/a"}% busy, ${processCount ?? "n/a"} processes`;
    if (!busy) return pass(`${label}: idle, ${now} (max ${max}): idle links train down, not judged`);
    if (link.maxWidth !== undefined && link.width < link.maxWidth) {
      return fail(`${label}: busy (${load}) at ${now}, below its maximum width (max ${max})`, WIDTH_FIX);
    }
    if (link.maxGeneration !== undefined && link.generation < link.maxGeneration) {
      return warn(`${label}: busy (${load}) at ${now}, below its maximum generation (max ${max})`, GEN_FIX);
    }
    return pass(`${label}: busy at ${now} (max ${max})`);
  });
  const idle = findings.filter((f) => f.status === "pass" && f.text.includes(": idle,")).length;
  const busy = findings.filter((f) => f.status === "pass").length - idle;
  return fold(findings, {
    passSummary: `${busy} busy GPUs at their full link, ${idle} idle GPUs (idle links train down, not judged)`,
    empty: { status: "skip", text: "no GPUs" },
  });
}
