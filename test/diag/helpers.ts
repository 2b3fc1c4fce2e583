// Builders shared by the diagnostics tests: a run of chosen checks against the simulator
// (in-process NVML, so each run costs milliseconds), fixture paths, and result lookups.
import assert from "node:assert/strict";
import { join } from "node:path";
import type { DiagnosticSources } from "../../src/diag/context.js";
import { inProcessNvmlSource } from "../../src/diag/nvml-source.js";
import { type RunDiagnosticsOptions, runDiagnostics } from "../../src/diag/runner.js";
import type { CheckResult, CheckStatus, DiagnosticsReport } from "../../src/diag/types.js";
import { openNvml } from "../../src/nvml/index.js";

export const DIAG_FIXTURES = join(import.meta.dirname, "..", "fixtures", "diag");
/** The wall clock the kernel-log fixtures are written against: 2026-07-01 12:30 UTC. */
export const NOW_MS = Date.UTC(2026, 6, 1, 12, 30, 0);

/** Runs diagnostics on the simulator in this process; `sources` add or replace sources. */
export async function diagnose(
  options: RunDiagnosticsOptions,
  sources: Partial<DiagnosticSources> = {},
): Promise<DiagnosticsReport> {
  const nvml = sources.nvml ?? inProcessNvmlSource(() => openNvml({ readOnly: true }));
  try {
    return await runDiagnostics({ procRoot: "/nonexistent", euid: 0, ...sources, nvml }, options);
  } finally {
    await nvml.close();
  }
}

export function result(report: DiagnosticsReport, id: string): CheckResult {
  const r = report.results.find((x) => x.id === id);
  assert.ok(r, `no result for ${id} in ${report.results.map((x) => x.id).join(", ")}`);
  return r;
}

/** Runs one check and asserts its status; returns the result for further assertions. */
export async function expectCheck(
  id: string,
  status: CheckStatus,
  options: Omit<RunDiagnosticsOptions, "only"> = {},
  sources: Partial<DiagnosticSources> = {},
): Promise<CheckResult> {
  const report = await diagnose({ ...options, only: [id] }, sources);
  const r = result(report, id);
  assert.equal(r.status, status, `${id}: expected ${status}, got ${r.status}\n${r.evidence.join("\n")}`);
  if (status === "warn" || status === "fail")
    assert.ok(r.remediation.length > 0, `${id} ${status} without remediation`);
  return r;
}

export function evidenceMatches(r: CheckResult, pattern: RegExp): void {
  assert.ok(
    r.evidence.some((e) => pattern.test(e)),
    `${r.id}: no evidence matches ${pattern}:\n${r.evidence.join("\n")}`,
  );
}
