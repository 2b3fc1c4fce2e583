// The checklist an operator reads at 3 a.m., and the exit status scripts and
// node-problem-detector read: 0 all pass, 1 warnings, 2 failures (3 is the CLI's "could not run").
import type { CheckResult, CheckStatus, DiagnosticsReport } from "./types.js";

const LABEL: Record<CheckStatus, string> = { pass: "PASS", warn: "WARN", fail: "FAIL", skip: "SKIP" };

const HEADLINE: Record<0 | 1 | 2, string> = {
  0: "PASS: this node is fit to run work",
  1: "WARN: this node can run work; look at the warnings below",
  2: "FAIL: this node is not fit to run work; fix the failures below",
};

export interface RenderOptions {
  /** Show the evidence of passing and skipped checks too (default: one line each). */
  readonly verbose?: boolean;
}

export function renderReport(report: DiagnosticsReport, options: RenderOptions = {}): string {
  const s = report.summary;
  const level = report.level === "standard" ? `standard, ${Math.round(report.windowMs / 1000)} s window` : "quick";
  const counts = `${s.passed} pass, ${s.warned} warn, ${s.failed} fail, ${s.skipped} skip`;
  const out = [
    `${HEADLINE[s.exitCode]}`,
    `(${report.results.length} checks, ${level}: ${counts}; ${(report.durationMs / 1000).toFixed(1)} s)`,
    "",
  ];
  const idWidth = Math.max(0, ...report.results.map((r) => r.id.length));
  for (const r of report.results) out.push(...renderResult(r, idWidth, options.verbose ?? false));
  return out.join("\n");
}

function renderResult(r: CheckResult, idWidth: number, verbose: boolean): string[] {
  const timing = r.timedOut ? "  (timed out)" : "";
  const lines = [`[${LABEL[r.status]}] ${r.id.padEnd(idWidth)}  ${r.title}${timing}`];
  const indent = "       ";
  const quiet = !verbose && (r.status === "pass" || r.status === "skip");
  const evidence = quiet ? r.evidence.slice(0, 1) : r.evidence;
  for (const e of evidence) lines.push(`${indent}${e}`);
  if (quiet && r.evidence.length > 1) lines.push(`${indent}(${r.evidence.length - 1} more; --verbose shows them)`);
  if (r.remediation && (r.status === "warn" || r.status === "fail" || verbose)) {
    const [first, ...rest] = r.remediation.split("\n");
    lines.push(`${indent}fix: ${first}`);
    for (const line of rest) lines.push(`${indent}     ${line}`);
  }
  return lines;
}
