// Runs checks concurrently, each under its own timeout, and builds the report. A check that
// does not get its facts in time is reported as timed out (naming the call it waited on) and
// the run goes on: one hung NVML call costs one timeout, never the run.
import { setMaxListeners } from "node:events";
import { InputError } from "../errors.js";
import { type AnyCheck, checksForLevel } from "./checks.js";
import { type DiagConfig, type DiagConfigInput, resolveConfig } from "./config.js";
import { type DiagnosticSources, RunFacts } from "./context.js";
import { FactsUnavailableError, NvmlUnavailableError } from "./errors.js";
import { seconds } from "./findings.js";
import type { CheckResult, DiagnosticsReport, Verdict } from "./types.js";
import { summarize } from "./types.js";

export interface RunDiagnosticsOptions extends DiagConfigInput {
  /** Cancels the run: checks still running are reported as skipped ("cancelled"). */
  readonly signal?: AbortSignal;
  /** Called with each result as it completes (completion order), e.g. to stream it. */
  readonly onResult?: (result: CheckResult) => void;
  /** Checks to choose from (default: all); the level still filters them. */
  readonly checks?: readonly AnyCheck[];
  /** Only checks whose id equals or starts with one of these (`gpu.ecc`, `fabric`). */
  readonly only?: readonly string[];
}

/** Runs the checks of the level against `sources`; never rejects for a failing or hung check. */
export async function runDiagnostics(
  sources: DiagnosticSources,
  options: RunDiagnosticsOptions = {},
): Promise<DiagnosticsReport> {
  const config = resolveConfig(options);
  const checks = selectChecks(checksForLevel(config.level, options.checks), options.only);
  const controller = new AbortController();
  const signal = options.signal ? AbortSignal.any([options.signal, controller.signal]) : controller.signal;
  // Every check and read listens on it: far more than the default warning threshold of 10.
  setMaxListeners(0, signal);
  const facts = new RunFacts(sources, config, signal);
  const started = performance.now();
  try {
    const results = await Promise.all(
      checks.map(async (check) => {
        const result = await runCheck(check, facts, config, signal);
        options.onResult?.(result);
        return result;
      }),
    );
    return {
      level: config.level,
      windowMs: config.windowMs,
      startedAtMs: facts.startedMs,
      durationMs: performance.now() - started,
      results,
      summary: summarize(results),
    };
  } finally {
    // Windowed reads nobody waits for any more (their checks timed out) stop sleeping.
    controller.abort();
  }
}

function selectChecks(checks: readonly AnyCheck[], only: readonly string[] | undefined): AnyCheck[] {
  if (only === undefined || only.length === 0) return [...checks];
  const matches = (c: AnyCheck, pattern: string) =>
    c.id === pattern || c.id.startsWith(`${pattern.replace(/\.$/, "")}.`);
  for (const pattern of only) {
    if (!checks.some((c) => matches(c, pattern))) {
      throw new InputError(
        `--check ${pattern}: no such check at this level (known: ${checks.map((c) => c.id).join(", ")})`,
      );
    }
  }
  return checks.filter((c) => only.some((p) => matches(c, p)));
}

type Outcome<T> =
  | { readonly kind: "ok"; readonly value: T }
  | { readonly kind: "error"; readonly error: unknown }
  | { readonly kind: "timeout" }
  | { readonly kind: "aborted" };

/** `work`'s outcome, or timeout/aborted if either comes first; the timer never outlives it. */
function settle<T>(work: Promise<T>, timeoutMs: number, signal: AbortSignal): Promise<Outcome<T>> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve({ kind: "aborted" });
    const timer = setTimeout(() => finish({ kind: "timeout" }), timeoutMs);
    const onAbort = () => finish({ kind: "aborted" });
    signal.addEventListener("abort", onAbort, { once: true });
    function finish(outcome: Outcome<T>) {
      clearTimeout(timer);
      signal.removeEventListener("abort", onAbort);
      resolve(outcome);
    }
    work.then(
      (value) => finish({ kind: "ok", value }),
      (error: unknown) => finish({ kind: "error", error }),
    );
  });
}

const HUNG_NVML_FIX =
  "An NVML call did not return: the driver or a GPU is stuck. Read dmesg for XID 79, 119 or 120 around now; if calls keep hanging, drain the node and reboot it.";
const HUNG_READ_FIX =
  "A read did not finish in time: run the check again; if it hangs again, look at what it reads (above).";

async function runCheck(
  check: AnyCheck,
  facts: RunFacts,
  config: DiagConfig,
  signal: AbortSignal,
): Promise<CheckResult> {
  const started = performance.now();
  const awaited = new Set<string>();
  const limitMs = (check.timeoutMs ?? config.checkTimeoutMs) + (check.windowed ? config.windowMs : 0);
  const outcome = await settle(check.gather(facts.view(awaited)), limitMs, signal);
  let verdict: Verdict;
  let timedOut = false;
  switch (outcome.kind) {
    case "ok":
      try {
        verdict = check.verdict(outcome.value, config);
      } catch (err) {
        verdict = { status: "fail", evidence: [`internal error judging the facts: ${message(err)}`], remediation: "" };
      }
      break;
    case "timeout":
      timedOut = true;
      verdict = timeoutVerdict(facts, awaited, limitMs);
      break;
    case "aborted":
      verdict = { status: "skip", evidence: ["cancelled before it finished"], remediation: "" };
      break;
    case "error":
      verdict = errorVerdict(outcome.error);
      break;
  }
  return {
    id: check.id,
    title: check.title,
    level: check.level,
    ...verdict,
    durationMs: performance.now() - started,
    timedOut,
  };
}

function timeoutVerdict(facts: RunFacts, awaited: ReadonlySet<string>, limitMs: number): Verdict {
  const now = Date.now();
  const evidence = [`no answer within ${seconds(limitMs)}`];
  let nvmlHung = false;
  for (const p of facts.pending(awaited)) {
    if (p.family === undefined) {
      evidence.push(`${p.key} still running after ${seconds(now - p.startedMs)}`);
      continue;
    }
    const progress = facts.sources.nvml.progress(p.family);
    if (!progress) {
      evidence.push(`NVML probe "${p.family}" still running after ${seconds(now - p.startedMs)}`);
      continue;
    }
    nvmlHung = true;
    const on = progress.gpu === undefined ? "" : ` on GPU ${progress.gpu}`;
    evidence.push(`${progress.operation}${on} had not returned after ${seconds(now - progress.sinceMs)}`);
  }
  return { status: "fail", evidence, remediation: nvmlHung ? HUNG_NVML_FIX : HUNG_READ_FIX };
}

function errorVerdict(err: unknown): Verdict {
  if (err instanceof NvmlUnavailableError) {
    // nvml.library reports the whole story; the others only point at it.
    const why = err.probeError.nvmlCode ?? err.probeError.message.split("\n")[0];
    return { status: "skip", evidence: [`NVML is not available (${why}): see nvml.library`], remediation: "" };
  }
  if (err instanceof FactsUnavailableError) return { status: "skip", evidence: [err.message], remediation: "" };
  return {
    status: "fail",
    evidence: [`could not read: ${message(err)}`],
    remediation: "What this check reads failed: fix the error above and run tessera diag again.",
  };
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
