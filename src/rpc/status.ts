// The one place where Tessera's error codes become gRPC status codes. Every handler error goes
// through toServiceError; a code not listed here is INTERNAL (and worth adding).
import { Metadata, type ServiceError, status } from "@grpc/grpc-js";
import { errorMessage, TesseraError } from "../errors.js";

const BY_CODE: Readonly<Record<string, status>> = {
  // Input.
  TESSERA_INVALID_ARGUMENT: status.INVALID_ARGUMENT,
  TESSERA_INVALID_INPUT: status.INVALID_ARGUMENT,
  // Auth.
  TESSERA_UNAUTHENTICATED: status.UNAUTHENTICATED,
  TESSERA_PERMISSION_DENIED: status.PERMISSION_DENIED,
  // Leases.
  TESSERA_DEVICE_NOT_FOUND: status.NOT_FOUND,
  TESSERA_DEVICE_BUSY: status.FAILED_PRECONDITION,
  TESSERA_DEVICE_UNHEALTHY: status.FAILED_PRECONDITION,
  TESSERA_MIG_MODE: status.FAILED_PRECONDITION,
  TESSERA_WORKLOAD_HOLDS_OTHER: status.ALREADY_EXISTS,
  TESSERA_ALLOCATION_IN_PROGRESS: status.ABORTED,
  TESSERA_NO_ROOM: status.RESOURCE_EXHAUSTED,
  // Agent state.
  TESSERA_READ_ONLY: status.FAILED_PRECONDITION,
  TESSERA_NOT_READY: status.UNAVAILABLE,
  TESSERA_SHUTTING_DOWN: status.UNAVAILABLE,
  TESSERA_NVML_TIMEOUT: status.UNAVAILABLE,
  TESSERA_WORKER_GONE: status.UNAVAILABLE,
  TESSERA_STATE_CORRUPT: status.DATA_LOSS,
  TESSERA_LEASES_CORRUPT: status.DATA_LOSS,
  // MIG manager.
  TESSERA_MIG_INFEASIBLE: status.FAILED_PRECONDITION,
  TESSERA_MIG_BUSY: status.FAILED_PRECONDITION,
  TESSERA_MIG_APPLY_ROLLED_BACK: status.ABORTED,
  TESSERA_MIG_APPLY_FAILED: status.INTERNAL,
  TESSERA_MIG_STATE: status.ABORTED,
  TESSERA_MIG_GEOMETRY: status.INTERNAL,
  // NVML return codes (TESSERA_NVML_<KEY>).
  TESSERA_NVML_IN_USE: status.FAILED_PRECONDITION,
  TESSERA_NVML_INSUFFICIENT_RESOURCES: status.RESOURCE_EXHAUSTED,
  TESSERA_NVML_NOT_FOUND: status.NOT_FOUND,
  TESSERA_NVML_GPU_NOT_FOUND: status.NOT_FOUND,
  TESSERA_NVML_GPU_IS_LOST: status.FAILED_PRECONDITION,
  TESSERA_NVML_NOT_SUPPORTED: status.FAILED_PRECONDITION,
  TESSERA_NVML_RESET_REQUIRED: status.FAILED_PRECONDITION,
  TESSERA_NVML_NO_PERMISSION: status.FAILED_PRECONDITION,
  TESSERA_NVML_INVALID_STATE: status.FAILED_PRECONDITION,
  TESSERA_NVML_UNINITIALIZED: status.UNAVAILABLE,
  TESSERA_NVML_DRIVER_NOT_LOADED: status.UNAVAILABLE,
  TESSERA_NVML_LIBRARY_NOT_FOUND: status.UNAVAILABLE,
  // Scheduler (src/scheduler/).
  TESSERA_NO_CAPACITY: status.RESOURCE_EXHAUSTED,
  TESSERA_QUOTA_EXCEEDED: status.RESOURCE_EXHAUSTED,
  TESSERA_ALLOCATION_FAILED: status.ABORTED,
  TESSERA_WORKLOAD_CONFLICT: status.ALREADY_EXISTS,
  TESSERA_AGENT_TIMEOUT: status.UNAVAILABLE,
  TESSERA_AGENT_UNAVAILABLE: status.UNAVAILABLE,
  TESSERA_AGENT_REFUSED: status.FAILED_PRECONDITION,
};

/** The gRPC status for a Tessera error code (INTERNAL when it has none). */
export function statusForCode(code: string): status {
  return BY_CODE[code] ?? status.INTERNAL;
}

/** The error a handler passes to grpc-js: status, message, and the Tessera code in metadata. */
export function toServiceError(err: unknown): Partial<ServiceError> {
  const code = err instanceof TesseraError ? err.code : "TESSERA_INTERNAL";
  const metadata = new Metadata();
  metadata.set("tessera-error-code", code);
  return { code: statusForCode(code), details: errorMessage(err), metadata };
}

/** The Tessera code a client received, from the trailing metadata. */
export function tesseraCodeOf(err: ServiceError): string | undefined {
  const v = err.metadata?.get("tessera-error-code")[0];
  return typeof v === "string" ? v : undefined;
}
