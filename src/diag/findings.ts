// Folding per-GPU (or per-port) findings into one verdict: the worst status wins, every finding
// is evidence, and each distinct remediation is said once.
import type { GpuProbe } from "./facts.js";
import { type CheckStatus, type Verdict, worstStatus } from "./types.js";

export interface Finding {
  readonly status: CheckStatus;
  readonly text: string;
  /** What to do about this finding; said once however many findings share it. */
  readonly remediation?: string;
}

export const pass = (text: string): Finding => ({ status: "pass", text });
export const warn = (text: string, remediation: string): Finding => ({ status: "warn", text, remediation });
export const fail = (text: string, remediation: string): Finding => ({ status: "fail", text, remediation });
export const skipped = (text: string): Finding => ({ status: "skip", text });

/**
 * One verdict from findings. Problems are listed one by one. Passing findings, when there are
 * many and a `passSummary` is given, are led by it (the checklist shows the first line), or
 * shrink to a count next to problems: eight "GPU n: fine" lines say less than one.
 */
export function fold(findings: readonly Finding[], options: { passSummary?: string; empty?: Finding } = {}): Verdict {
  const all = findings.length === 0 && options.empty ? [options.empty] : findings;
  const status = worstStatus(
    all.map((f) => f.status),
    "skip",
  );
  const problems = all.filter((f) => f.status === "warn" || f.status === "fail");
  const passes = all.filter((f) => f.status === "pass");
  const skips = all.filter((f) => f.status === "skip");
  let passLines = passes.map((f) => f.text);
  if (passes.length > 1 && options.passSummary) {
    // Next to problems a count is enough; alone, the summary leads and the details follow it.
    passLines = problems.length > 0 ? [`${passes.length} others fine`] : [options.passSummary, ...passLines];
  }
  const evidence = [...problems.map((f) => f.text), ...passLines, ...skips.map((f) => f.text)];
  const remediation = [...new Set(all.flatMap((f) => (f.remediation ? [f.remediation] : [])))].join("\n");
  return { status, evidence, remediation };
}

export function gpuLabel(index: number | undefined, pciBusId?: string): string {
  const name = index === undefined ? "unknown GPU" : `GPU ${index}`;
  return pciBusId ? `${name} (${pciBusId})` : name;
}

const LOST = "NVML_ERROR_GPU_IS_LOST";

/**
 * Findings for GPUs whose probe failed: a lost GPU is gpu.reachable's to report (skipped
 * here), any other error means this check could not read that GPU (a failure).
 */
export function unreadable<T>(probe: GpuProbe<T>): Finding | undefined {
  if (!probe.error) return undefined;
  if (probe.error.nvmlCode === LOST) return skipped(`${gpuLabel(probe.index)}: lost, not read (see gpu.reachable)`);
  return fail(
    `${gpuLabel(probe.index)}: could not be read: ${probe.error.message}`,
    "NVML could not read this GPU: check `nvidia-smi -i <index> -q` and the kernel log for XIDs; drain the GPU if it keeps failing.",
  );
}

/** `a`, `a and b`, `a, b and c`. */
export function listing(items: readonly string[]): string {
  if (items.length <= 1) return items.join("");
  return `${items.slice(0, -1).join(", ")} and ${items[items.length - 1]}`;
}

export function percent(fraction: number): string {
  return `${Math.round(fraction * 1000) / 10}%`;
}

export function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}
