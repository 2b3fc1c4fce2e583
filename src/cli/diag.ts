// `tessera diag`: is this node fit to run work, and if not, what to do. Runs the checks of
// src/diag here, reading NVML through a probe host process (so a hung call costs a timeout).
import { resolve } from "node:path";
import { create } from "@bufbuild/protobuf";
import type { ServiceError } from "@grpc/grpc-js";
import { Command, CommanderError, Option } from "commander";
import {
  ALL_CHECKS,
  type CheckLevel,
  type CheckResult,
  type CheckStatus,
  checkpointLeaseProvider,
  DEFAULT_CHECK_TIMEOUT_MS,
  DEFAULT_SAMPLE_INTERVAL_MS,
  DEFAULT_WINDOW_MS,
  DEFAULT_XID_LOOKBACK_MS,
  type DiagnosticSources,
  type DiagnosticsReport,
  type KernelLogSource,
  type NvmlFactSource,
  type ProbeHostOptions,
  probeHostNvmlSource,
  renderReport,
  runDiagnostics,
  summarize,
} from "../diag/index.js";
import { errorMessage, InputError, TesseraError } from "../errors.js";
import { loadExpectedFabric, parseDurationMs } from "../fabric/expect-config.js";
import { DEFAULT_PROC_ROOT, DEFAULT_SYSFS_ROOT } from "../fabric/read.js";
import {
  type CheckResult as CheckResultProto,
  CheckStatus as CheckStatusProto,
  DiagnosticLevel,
  RunDiagnosticsRequestSchema,
  type RunDiagnosticsResponse,
} from "../gen/tessera/v1/agent_pb.js";
import { simulatorLibraryPath } from "../nvml/index.js";
import { connectAgent } from "../rpc/client.js";
import { SimControl, type SimPreset } from "../sim/control.js";
import { addNvmlOptions, type NvmlCliOptions } from "./nvml-options.js";
import { parseOutputFormat, toJson } from "./table.js";

/** Exit status when the checks could not be run at all (bad flags, unreadable --fabric-expect). */
export const EXIT_NOT_RUN = 3;
export const DEFAULT_LEASES_PATH = "/var/lib/tessera/leases.json";

export interface DiagCommandOptions extends NvmlCliOptions {
  level: string;
  window: string;
  timeout: string;
  sampleInterval: string;
  expectGpus?: string;
  fabricExpect?: string;
  sysfsRoot: string;
  procRoot: string;
  kernelLog: string;
  xidLookback: string;
  leases: string;
  check?: string[];
  output: string;
  verbose?: boolean;
  agent?: string;
  ca?: string;
  cert?: string;
  key?: string;
  insecure?: boolean;
}

export interface DiagCommandDeps {
  /** Where NVML facts come from; default: a probe host process on the chosen library. */
  nvmlSource?: (options: ProbeHostOptions) => NvmlFactSource;
  clock?: () => number;
  stdout?: (text: string) => void;
  stderr?: (text: string) => void;
}

const HELP_AFTER = `
Checks (quick: seconds, no load on the GPUs; standard adds a sampling window):
  nvml.library, nvml.versions, nvml.mig-permissions, gpu.count, gpu.reachable,
  gpu.xid, gpu.ecc, gpu.memory-repair, gpu.throttle, gpu.pcie, mig.layout,
  mig.leases, fabric.ports, topology.gpu-nic; standard: gpu.xid-burst,
  gpu.error-rates, gpu.throttle-residency, fabric.error-rates.

Each check runs with its own timeout: a hung NVML call makes the checks that
need it FAIL as timed out (naming the call), and the report still finishes.

--kernel-log: a file (dmesg or journal text), or auto (journalctl -k, else
/dev/kmsg), journal, kmsg, none.

--agent runs the same checks inside the agent (RunDiagnostics; operator role),
with the agent's own configuration: only --level, --window, -o and --verbose
apply then.

Exit status:
  0  every check passed (skipped checks do not count)
  1  warnings, no failures
  2  at least one check failed: the node is not fit to run work
  3  the checks could not be run (invalid flags or --fabric-expect file)
`;

export function diagCommand(deps: DiagCommandDeps = {}): Command {
  const cmd = new Command("diag")
    .description("Diagnose whether this node is fit to run work, with what to do about each problem")
    .option("--level <level>", "quick or standard", "quick")
    .option("--window <duration>", "standard level's sampling window", `${DEFAULT_WINDOW_MS / 1000}s`)
    .option(
      "--timeout <duration>",
      "each check's time limit (windowed checks get the window on top)",
      `${DEFAULT_CHECK_TIMEOUT_MS / 1000}s`,
    )
    .addOption(
      new Option("--sample-interval <duration>", "interval between throttle samples in the window").default(
        `${DEFAULT_SAMPLE_INTERVAL_MS / 1000}s`,
      ),
    )
    .option("--expect-gpus <n>", "the number of GPUs this host should have")
    .option("--fabric-expect <file>", "YAML file describing the expected fabric (as tessera fabric --expect)")
    .option("--sysfs-root <dir>", "sysfs to read the fabric and PCI topology from", DEFAULT_SYSFS_ROOT)
    .option("--proc-root <dir>", "procfs (boot time, boot id, MIG capabilities)", DEFAULT_PROC_ROOT)
    .option("--kernel-log <source>", "where to read XIDs: a file, auto, journal, kmsg or none", "auto")
    .option(
      "--xid-lookback <duration>",
      "how far back kernel-log XIDs count",
      `${DEFAULT_XID_LOOKBACK_MS / 3_600_000}h`,
    )
    .option("--leases <file>", "the agent's lease checkpoint", DEFAULT_LEASES_PATH)
    .option("--check <id...>", "run only these checks (an id or a family prefix like gpu or fabric)")
    .option("-o, --output <format>", "table or json", "table")
    .option("-v, --verbose", "show the evidence of passing checks too")
    .option(
      "--agent <address>",
      "run the checks inside a running tessera-agent (unix:///run/tessera/agent.sock or host:port; operator role)",
    )
    .option("--ca <file>", "with --agent host:port: CA of the agent's certificate")
    .option("--cert <file>", "with --agent host:port: this client's certificate")
    .option("--key <file>", "with --agent host:port: this client's key")
    .option("--insecure", "with --agent host:port: plaintext, for an agent started with --dev-insecure");
  return addNvmlOptions(cmd)
    .addHelpText("after", HELP_AFTER)
    .exitOverride((err) => {
      // Usage errors must not read as "warnings" (1) or "failures" (2) to scripts.
      if (err.exitCode === 0) throw err;
      throw new CommanderError(EXIT_NOT_RUN, err.code, err.message);
    })
    .action(async (options: DiagCommandOptions, command: Command) => {
      const stdout = deps.stdout ?? ((text: string) => process.stdout.write(text));
      const stderr = deps.stderr ?? ((text: string) => process.stderr.write(text));
      try {
        const { output, exitCode } =
          options.agent === undefined
            ? await runDiagCommand(options, deps)
            : await runAgentDiagnostics(options, localFlagsGiven(command));
        stdout(output);
        process.exitCode = exitCode;
      } catch (err) {
        if (!(err instanceof TesseraError)) throw err;
        stderr(`tessera diag: ${err.message} [${err.code}]\n`);
        process.exitCode = EXIT_NOT_RUN;
      }
    });
}

export interface DiagRun {
  output: string;
  exitCode: number;
  report: DiagnosticsReport;
}

/** The command without commander and without touching process state; throws InputError on bad flags. */
export async function runDiagCommand(options: DiagCommandOptions, deps: DiagCommandDeps = {}): Promise<DiagRun> {
  const level = parseLevel(options.level);
  const output = parseOutput(options.output);
  const windowMs = duration("--window", options.window);
  const checkTimeoutMs = duration("--timeout", options.timeout);
  const sampleIntervalMs = duration("--sample-interval", options.sampleInterval);
  const xidLookbackMs = duration("--xid-lookback", options.xidLookback);
  const expectedGpuCount = options.expectGpus === undefined ? undefined : count("--expect-gpus", options.expectGpus);
  if (options.preset && !options.sim) throw new InputError("--preset needs --sim");
  const expectations = options.fabricExpect ? await loadExpectedFabric(options.fabricExpect) : undefined;

  const libraryPath = options.sim ? simulatorLibraryPath() : options.library;
  if (options.sim && options.preset) {
    const control = SimControl.open(libraryPath);
    if (control.preset() !== options.preset) control.selectPreset(options.preset as SimPreset);
  }
  const nvml = (deps.nvmlSource ?? probeHostNvmlSource)(libraryPath ? { libraryPath } : {});
  const sysfsRoot = resolve(options.sysfsRoot);
  const sources: DiagnosticSources = {
    nvml,
    kernelLog: kernelLogSource(options.kernelLog),
    procRoot: options.procRoot,
    fabric: { sysfsRoot, procRoot: options.procRoot, ...(expectations ? { expectations } : {}) },
    leases: checkpointLeaseProvider(options.leases),
    ...(deps.clock ? { clock: deps.clock } : {}),
  };
  let report: DiagnosticsReport;
  try {
    report = await runDiagnostics(sources, {
      level,
      windowMs,
      checkTimeoutMs,
      sampleIntervalMs,
      xidLookbackMs,
      ...(expectedGpuCount === undefined ? {} : { expectedGpuCount }),
      ...(options.check ? { only: options.check } : {}),
    });
  } finally {
    await nvml.close();
  }
  const text = output === "json" ? toJson(report) : renderReport(report, { verbose: options.verbose ?? false });
  return { output: `${text}\n`, exitCode: report.summary.exitCode, report };
}

function parseLevel(value: string): CheckLevel {
  if (value === "quick" || value === "standard") return value;
  throw new InputError(`--level: expected quick or standard, got "${value}"`);
}

function parseOutput(value: string) {
  try {
    return parseOutputFormat(value);
  } catch (err) {
    throw new InputError(errorMessage(err));
  }
}

function duration(flag: string, value: string): number {
  const ms = parseDurationMs(value);
  if (ms === undefined)
    throw new InputError(`${flag}: expected a duration like 500ms, 30s, 10min or 24h, got "${value}"`);
  return ms;
}

function count(flag: string, value: string): number {
  if (!/^\d+$/.test(value) || Number(value) < 1) {
    throw new InputError(`${flag}: expected a positive whole number, got "${value}"`);
  }
  return Number(value);
}

function kernelLogSource(value: string): KernelLogSource {
  switch (value) {
    case "auto":
    case "journal":
    case "kmsg":
    case "none":
      return { kind: value };
    default:
      return { kind: "file", path: value };
  }
}

// ── --agent: RunDiagnostics on a running agent ───────────────────────────

/** Flags that configure a local run; the agent runs with its own configuration. */
const LOCAL_ONLY = [
  "timeout",
  "sampleInterval",
  "expectGpus",
  "fabricExpect",
  "sysfsRoot",
  "procRoot",
  "kernelLog",
  "xidLookback",
  "leases",
  "check",
  "library",
  "sim",
  "preset",
] as const;

function localFlagsGiven(command: Command): string[] {
  return LOCAL_ONLY.filter((name) => command.getOptionValueSource(name) === "cli").map(
    (name) => `--${name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`,
  );
}

/** The agent could not be asked, or its answer was incomplete. */
export class AgentDiagnosticsError extends TesseraError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("TESSERA_AGENT_DIAGNOSTICS", message, options);
  }
}

const STATUS_FROM_PROTO: Record<CheckStatusProto, CheckStatus | undefined> = {
  [CheckStatusProto.UNSPECIFIED]: undefined,
  [CheckStatusProto.PASS]: "pass",
  [CheckStatusProto.WARN]: "warn",
  [CheckStatusProto.FAIL]: "fail",
  [CheckStatusProto.SKIP]: "skip",
};

const CHECK_ORDER = new Map(ALL_CHECKS.map((c, i) => [c.id, i]));
const CHECK_LEVEL = new Map(ALL_CHECKS.map((c) => [c.id, c.level]));

export function resultFromProto(r: CheckResultProto): CheckResult {
  const status = STATUS_FROM_PROTO[r.status];
  if (status === undefined) throw new AgentDiagnosticsError(`agent sent check ${r.id} without a status`);
  return {
    id: r.id,
    title: r.title,
    // The wire result has no level; the check registry knows it (a newer agent's check counts as quick).
    level: CHECK_LEVEL.get(r.id) ?? "quick",
    status,
    evidence: [...r.evidence],
    remediation: r.remediation,
    durationMs: r.durationMs,
    timedOut: r.timedOut,
  };
}

/** Slack on top of the window for the agent to finish its checks. */
const AGENT_DEADLINE_SLACK_MS = 120_000;

export async function runAgentDiagnostics(
  options: DiagCommandOptions,
  localFlags: readonly string[] = [],
): Promise<DiagRun> {
  const address = options.agent as string;
  if (localFlags.length > 0) {
    throw new InputError(
      `${localFlags.join(", ")}: local-run options; with --agent the agent uses its own configuration (only --level, --window, -o and --verbose apply)`,
    );
  }
  const level = parseLevel(options.level);
  const output = parseOutput(options.output);
  const windowMs = level === "standard" ? duration("--window", options.window) : 0;
  const client = await connectAgent({
    address,
    ca: options.ca,
    cert: options.cert,
    key: options.key,
    insecure: options.insecure,
  });
  const startedAtMs = Date.now();
  const started = performance.now();
  const results: CheckResult[] = [];
  let summaryExit: number | undefined;
  try {
    const request = create(RunDiagnosticsRequestSchema, {
      level: level === "standard" ? DiagnosticLevel.STANDARD : DiagnosticLevel.QUICK,
      windowMs,
    });
    const stream = client.runDiagnostics(request, { deadline: Date.now() + windowMs + AGENT_DEADLINE_SLACK_MS });
    await new Promise<void>((resolveStream, reject) => {
      stream.on("data", (message: RunDiagnosticsResponse) => {
        try {
          if (message.item.case === "result") results.push(resultFromProto(message.item.value));
          else if (message.item.case === "summary") summaryExit = message.item.value.exitCode;
        } catch (err) {
          stream.cancel();
          reject(err);
        }
      });
      stream.on("error", (err: ServiceError) =>
        reject(
          new AgentDiagnosticsError(`${address}: RunDiagnostics failed: ${err.details || err.message}`, { cause: err }),
        ),
      );
      stream.on("end", () => resolveStream());
    });
  } finally {
    client.close();
  }
  if (summaryExit === undefined) {
    throw new AgentDiagnosticsError(
      `${address}: the agent ended RunDiagnostics without a summary (${results.length} results)`,
    );
  }
  results.sort((a, b) => (CHECK_ORDER.get(a.id) ?? 1e9) - (CHECK_ORDER.get(b.id) ?? 1e9));
  const report: DiagnosticsReport = {
    level,
    windowMs,
    startedAtMs,
    durationMs: performance.now() - started,
    results,
    summary: summarize(results),
  };
  const text =
    output === "json"
      ? toJson({ ...report, agent: address })
      : `${renderReport(report, { verbose: options.verbose ?? false })}\n(run by the agent at ${address})`;
  // The agent's own verdict on its exit status wins: it judged with checks this CLI may not know.
  return { output: `${text}\n`, exitCode: summaryExit, report };
}
