import { TesseraError } from "../errors.js";
import { type NvmlReturnName, Rc, returnCodeKey, returnCodeName } from "./return-codes.js";

/** Which device a failed call was about, as far as the binding knew it. */
export interface NvmlDeviceRef {
  /** NVML index of the GPU (the parent GPU for a MIG device). */
  readonly index?: number;
  /** Index of a MIG device under its parent (nvmlDeviceGetMigDeviceHandleByIndex). */
  readonly migIndex?: number;
  readonly uuid?: string;
}

/**
 * An NVML call returned something other than NVML_SUCCESS.
 * `code` is `TESSERA_NVML_<KEY>` (e.g. TESSERA_NVML_IN_USE), `nvmlCode` the header's name.
 */
export class NvmlError extends TesseraError {
  /** nvmlReturn_t value, e.g. 19. */
  readonly nvmlReturn: number;
  /** nvmlReturn_t name, e.g. NVML_ERROR_IN_USE. */
  readonly nvmlCode: NvmlReturnName;
  /** NVML (or tsim) function that failed, e.g. nvmlGpuInstanceDestroy. */
  readonly operation: string;
  readonly device: NvmlDeviceRef | undefined;

  constructor(
    nvmlReturn: number,
    operation: string,
    options: { device?: NvmlDeviceRef; description?: string; detail?: string; cause?: unknown } = {},
  ) {
    const name = returnCodeName(nvmlReturn);
    const on = options.device ? ` on ${describeDevice(options.device)}` : "";
    const what = options.description ? `: ${options.description}` : "";
    const detail = options.detail ? ` (${options.detail})` : "";
    super(
      `TESSERA_NVML_${returnCodeKey(nvmlReturn)}`,
      `${operation} failed${on}: ${name} (${nvmlReturn})${what}${detail}`,
      options.cause === undefined ? undefined : { cause: options.cause },
    );
    this.nvmlReturn = nvmlReturn;
    this.nvmlCode = name;
    this.operation = operation;
    this.device = options.device;
  }
}

export interface LoadAttempt {
  readonly path: string;
  /** What the dynamic loader (or symbol binding) said. */
  readonly reason: string;
}

/**
 * No NVML library could be loaded. It carries NVML's own code for this case,
 * NVML_ERROR_LIBRARY_NOT_FOUND, so its code is TESSERA_NVML_LIBRARY_NOT_FOUND
 * (TESSERA_NVML_NOT_FOUND is NVML_ERROR_NOT_FOUND, a different thing).
 */
export class NvmlLibraryNotFoundError extends NvmlError {
  readonly attempts: readonly LoadAttempt[];

  constructor(attempts: readonly LoadAttempt[], simulatorHint: string) {
    const tried = attempts.map((a) => `  ${a.path}: ${a.reason}`).join("\n");
    super(Rc.LIBRARY_NOT_FOUND, "load NVML", {
      detail: `tried:\n${tried}\nTo run without NVIDIA's driver, use the simulator: ${simulatorHint}`,
    });
    this.attempts = attempts;
  }
}

export function describeDevice(ref: NvmlDeviceRef): string {
  const where =
    ref.index === undefined
      ? "device"
      : ref.migIndex === undefined
        ? `GPU ${ref.index}`
        : `MIG device ${ref.index}:${ref.migIndex}`;
  return ref.uuid ? `${where} (${ref.uuid})` : where;
}

/** A mutating NVML call was refused because the library was opened read-only. */
export class NvmlReadOnlyError extends TesseraError {
  readonly operation: string;
  readonly device: NvmlDeviceRef | undefined;

  constructor(operation: string, device?: NvmlDeviceRef) {
    const on = device ? ` on ${describeDevice(device)}` : "";
    super("TESSERA_READ_ONLY", `${operation}${on} refused: NVML was opened in read-only mode`);
    this.operation = operation;
    this.device = device;
  }
}
