// What a diagnostic check is and what a run reports. A check is a small module: what it reads
// (gather, the only I/O) and a pure verdict over those facts, so every verdict is a table test.
import type { DiagConfig } from "./config.js";
import type { GatherContext } from "./context.js";

/** quick: seconds, no load on the GPUs. standard: quick plus checks over a sampling window. */
export type CheckLevel = "quick" | "standard";
export const CHECK_LEVELS: readonly CheckLevel[] = ["quick", "standard"];

/** skip: the check does not apply here, or what it reads is not available (says which). */
export type CheckStatus = "pass" | "warn" | "fail" | "skip";

export interface Verdict {
  readonly status: CheckStatus;
  /** What was seen, one fact a line, naming the GPU, port or file it is about. */
  readonly evidence: readonly string[];
  /** What to do, in plain words; empty when there is nothing to do. */
  readonly remediation: string;
}

export interface Check<F = unknown> {
  /** Stable id, `family.name` (e.g. `gpu.ecc`): scripts and the RPC key on it. */
  readonly id: string;
  readonly title: string;
  readonly level: CheckLevel;
  /** What it reads (NVML functions, files), for the operator and the docs. */
  readonly reads: readonly string[];
  /** Its own limit on gathering; windowed checks are given the window on top of it. */
  readonly timeoutMs?: number;
  /** Whether it waits out the standard level's sampling window. */
  readonly windowed?: boolean;
  /** The only I/O a check does: ask the context for facts (shared by every check of a run). */
  gather(ctx: GatherContext): Promise<F>;
  /** Pure: the same facts and config give the same verdict. */
  verdict(facts: F, config: DiagConfig): Verdict;
}

/** One check's outcome, as the CLI prints it and the RunDiagnostics RPC streams it. */
export interface CheckResult extends Verdict {
  readonly id: string;
  readonly title: string;
  readonly level: CheckLevel;
  readonly durationMs: number;
  /** The check did not get its facts within its timeout (a hung NVML call, a stuck read). */
  readonly timedOut: boolean;
}

export interface DiagnosticsSummary {
  readonly passed: number;
  readonly warned: number;
  readonly failed: number;
  readonly skipped: number;
  /** 0 all pass (skips allowed), 1 warnings, 2 failures. */
  readonly exitCode: 0 | 1 | 2;
}

export interface DiagnosticsReport {
  readonly level: CheckLevel;
  /** Standard level's sampling window; 0 at quick level. */
  readonly windowMs: number;
  readonly startedAtMs: number;
  readonly durationMs: number;
  readonly results: readonly CheckResult[];
  readonly summary: DiagnosticsSummary;
}

/** Worst status first: the order a summary and a per-GPU fold use. */
const SEVERITY: Record<CheckStatus, number> = { fail: 3, warn: 2, pass: 1, skip: 0 };

export function worstStatus(statuses: Iterable<CheckStatus>, empty: CheckStatus = "pass"): CheckStatus {
  let worst: CheckStatus | undefined;
  for (const s of statuses) if (worst === undefined || SEVERITY[s] > SEVERITY[worst]) worst = s;
  return worst ?? empty;
}

export function summarize(results: readonly CheckResult[]): DiagnosticsSummary {
  const count = (s: CheckStatus) => results.filter((r) => r.status === s).length;
  const failed = count("fail");
  const warned = count("warn");
  return {
    passed: count("pass"),
    warned,
    failed,
    skipped: count("skip"),
    exitCode: failed > 0 ? 2 : warned > 0 ? 1 : 0,
  };
}
