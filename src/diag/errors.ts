// Typed errors of diagnostics. The runner turns them into check results: NVML that cannot be
// opened makes the checks that need it SKIP (nvml.library reports the cause once), anything
// else a check could not read makes it FAIL with the message as evidence.
import { TesseraError } from "../errors.js";
import type { ProbeError, ProbeFamily } from "./facts.js";

/** NVML could not be loaded or initialised where the probes run. */
export class NvmlUnavailableError extends TesseraError {
  readonly probeError: ProbeError;

  constructor(probeError: ProbeError) {
    super("TESSERA_DIAG_NVML_UNAVAILABLE", `NVML is not available: ${probeError.message}`);
    this.probeError = probeError;
  }
}

/** An NVML probe family failed as a whole (not one GPU: those are reported per GPU). */
export class ProbeFailedError extends TesseraError {
  readonly family: ProbeFamily;
  readonly probeError: ProbeError;

  constructor(family: ProbeFamily, probeError: ProbeError) {
    super("TESSERA_DIAG_PROBE_FAILED", `NVML probe "${family}" failed: ${probeError.message}`);
    this.family = family;
    this.probeError = probeError;
  }
}

/** The probe host process died or was closed before answering. */
export class ProbeHostError extends TesseraError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("TESSERA_DIAG_PROBE_HOST", message, options);
  }
}

/** What a check reads is not available on this host or from this caller: the check is skipped. */
export class FactsUnavailableError extends TesseraError {
  constructor(message: string) {
    super("TESSERA_DIAG_UNAVAILABLE", message);
  }
}
