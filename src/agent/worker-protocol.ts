// Messages between the main thread and the NVML worker threads. Everything is structured-clonable;
// errors cross as {name, code, message} and come back as RemoteError with the same code, so the one
// code → gRPC status table (src/rpc/status.ts) covers errors raised inside a worker too.
import { TesseraError } from "../errors.js";
import type { PackedSweep } from "../telemetry/sweep-pack.js";

export interface SerializedError {
  readonly name: string;
  readonly code: string;
  readonly message: string;
}

/** An error thrown inside a worker, rebuilt on the main thread. */
export class RemoteError extends TesseraError {
  readonly remoteName: string;

  constructor(e: SerializedError) {
    super(e.code, e.message);
    this.remoteName = e.name;
  }
}

/** A worker did not answer in time (an NVML call hangs): the request may still complete later. */
export class WorkerTimeoutError extends TesseraError {
  constructor(worker: string, op: string, timeoutMs: number) {
    super(
      "TESSERA_NVML_TIMEOUT",
      `${worker}: ${op} did not finish within ${timeoutMs} ms (an NVML call is hanging); it may still complete`,
    );
  }
}

export class WorkerGoneError extends TesseraError {
  constructor(worker: string, why: string) {
    super("TESSERA_WORKER_GONE", `${worker} is not running: ${why}`);
  }
}

export function serializeError(err: unknown): SerializedError {
  if (err instanceof TesseraError) return { name: err.name, code: err.code, message: err.message };
  if (err instanceof Error) return { name: err.name, code: "TESSERA_INTERNAL", message: err.message };
  return { name: "Error", code: "TESSERA_INTERNAL", message: String(err) };
}

/** An NVML event as the control worker saw it. */
export interface NvmlEventMessage {
  readonly atMs: number;
  readonly gpuIndex: number | undefined;
  readonly gpuUuid: string;
  readonly typeNames: readonly string[];
  /** The XID for XidCriticalError events. */
  readonly data: string;
  readonly gpuInstanceId: number | undefined;
  readonly computeInstanceId: number | undefined;
}

export type LogLevel = "debug" | "info" | "warn" | "error";

export type ToWorker =
  | { readonly kind: "request"; readonly id: number; readonly op: string; readonly args: unknown }
  | { readonly kind: "stop" };

export type FromWorker =
  | { readonly kind: "response"; readonly id: number; readonly ok: true; readonly value: unknown }
  | { readonly kind: "response"; readonly id: number; readonly ok: false; readonly error: SerializedError }
  | { readonly kind: "sweep"; readonly packed: PackedSweep }
  | { readonly kind: "nvml-event"; readonly event: NvmlEventMessage }
  | { readonly kind: "log"; readonly level: LogLevel; readonly fields: Record<string, unknown>; readonly msg: string }
  | { readonly kind: "stopped" };
