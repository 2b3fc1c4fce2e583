// Every GPU answers: none lost (NVML_ERROR_GPU_IS_LOST is how the driver says "fell off the
// bus"), none failing to open, none crawling through its identity calls.
import type { DiagConfig } from "./config.js";
import type { SystemFacts } from "./facts.js";
import { type Finding, fail, fold, gpuLabel, pass, seconds, warn } from "./findings.js";
import type { Check, Verdict } from "./types.js";

const LOST_FIX =
  "The GPU fell off the bus: drain the node and reboot it (a cold power cycle if a warm reboot does not bring it back); reseat or RMA the GPU if it happens again.";
const UNREACHABLE_FIX =
  "NVML cannot open this GPU: read dmesg for NVRM/Xid lines about it, drain its work and reset it (nvidia-smi -r -i <index>), or reboot the node.";
const SLOW_FIX =
  "A GPU that answers slowly is often about to fail: read dmesg for XIDs on it and keep new work off it until it answers promptly.";

export const gpuReachableCheck: Check<SystemFacts> = {
  id: "gpu.reachable",
  title: "Every GPU is reachable (none lost)",
  level: "quick",
  reads: ["nvmlDeviceGetHandleByIndex_v2", "nvmlDeviceGetUUID", "nvmlDeviceGetName", "nvmlDeviceGetPciInfo_v3"],
  gather: (ctx) => ctx.nvml("system"),
  verdict: reachableVerdict,
};

export function reachableVerdict(s: SystemFacts, config: DiagConfig): Verdict {
  const findings: Finding[] = s.gpus.map((g) => {
    const label = gpuLabel(g.index, g.pciBusId);
    if (g.error?.nvmlCode === "NVML_ERROR_GPU_IS_LOST") {
      return fail(`${label}: lost (${g.error.operation ?? "NVML"} answered NVML_ERROR_GPU_IS_LOST)`, LOST_FIX);
    }
    if (g.error) return fail(`${label}: unreachable: ${g.error.message}`, UNREACHABLE_FIX);
    const slow = g.slowestCall;
    if (slow && slow.ms >= config.thresholds.slowCallMs) {
      return warn(
        `${label}: ${slow.operation} took ${seconds(slow.ms)} (warning at ${seconds(config.thresholds.slowCallMs)})`,
        SLOW_FIX,
      );
    }
    return pass(`${label}: ${g.name ?? "GPU"} ${g.uuid ?? ""}`.trimEnd());
  });
  return fold(findings, {
    passSummary: `${findings.filter((f) => f.status === "pass").length} of ${s.gpus.length} GPUs answer`,
    empty: { status: "skip", text: "NVML sees no GPUs" },
  });
}
