// Operator diagnostics: is this node fit to run work, and if not, what to do. The CLI runs it
// locally (tessera diag); the agent runs the same checks for the RunDiagnostics RPC.
export { ALL_CHECKS, type AnyCheck, checksForLevel } from "./checks.js";
export {
  DEFAULT_CHECK_TIMEOUT_MS,
  DEFAULT_SAMPLE_INTERVAL_MS,
  DEFAULT_THRESHOLDS,
  DEFAULT_WINDOW_MS,
  DEFAULT_XID_LOOKBACK_MS,
  type DiagConfig,
  type DiagConfigInput,
  type DiagThresholds,
  resolveConfig,
} from "./config.js";
export type { DiagnosticSources, FabricSourceOptions, GatherContext, XidObservation } from "./context.js";
export { FactsUnavailableError, NvmlUnavailableError, ProbeFailedError, ProbeHostError } from "./errors.js";
export type { ProbeFamilies, ProbeFamily, ProbeParams, ProbeProgress } from "./facts.js";
export {
  type KernelLogReading,
  type KernelLogSource,
  type KernelXid,
  normalizePciPrefix,
  parseKernelLog,
  readKernelLog,
} from "./kernel-log.js";
export { checkpointLeaseProvider, type LeaseProvider, type LeaseRecord, leaseRecords } from "./leases.js";
export { inProcessNvmlSource, type NvmlFactSource } from "./nvml-source.js";
export { type ProbeHostOptions, probeHostNvmlSource } from "./probe-host-client.js";
export { type RenderOptions, renderReport } from "./report.js";
export { type RunDiagnosticsOptions, runDiagnostics } from "./runner.js";
export {
  CHECK_LEVELS,
  type Check,
  type CheckLevel,
  type CheckResult,
  type CheckStatus,
  type DiagnosticsReport,
  type DiagnosticsSummary,
  summarize,
  type Verdict,
} from "./types.js";
