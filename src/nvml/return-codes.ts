// The one table of nvmlReturn_t values (NVML 13.3 header, reference/nvml.md §3.1).
// Everything else in src/nvml/ refers to codes through `Rc` and names through `returnCodeName`.

export const Rc = {
  SUCCESS: 0,
  UNINITIALIZED: 1,
  INVALID_ARGUMENT: 2,
  NOT_SUPPORTED: 3,
  NO_PERMISSION: 4,
  ALREADY_INITIALIZED: 5,
  NOT_FOUND: 6,
  INSUFFICIENT_SIZE: 7,
  INSUFFICIENT_POWER: 8,
  DRIVER_NOT_LOADED: 9,
  TIMEOUT: 10,
  IRQ_ISSUE: 11,
  LIBRARY_NOT_FOUND: 12,
  FUNCTION_NOT_FOUND: 13,
  CORRUPTED_INFOROM: 14,
  GPU_IS_LOST: 15,
  RESET_REQUIRED: 16,
  OPERATING_SYSTEM: 17,
  LIB_RM_VERSION_MISMATCH: 18,
  IN_USE: 19,
  MEMORY: 20,
  NO_DATA: 21,
  VGPU_ECC_NOT_SUPPORTED: 22,
  INSUFFICIENT_RESOURCES: 23,
  FREQ_NOT_SUPPORTED: 24,
  ARGUMENT_VERSION_MISMATCH: 25,
  DEPRECATED: 26,
  NOT_READY: 27,
  GPU_NOT_FOUND: 28,
  INVALID_STATE: 29,
  RESET_TYPE_NOT_SUPPORTED: 30,
  UNKNOWN: 999,
} as const;

export type ReturnCodeKey = keyof typeof Rc;

/** The header's spelling: `NVML_SUCCESS` or `NVML_ERROR_<KEY>`; `NVML_ERROR_UNRECOGNIZED_<n>` for codes newer than this table. */
export type NvmlReturnName =
  | "NVML_SUCCESS"
  | `NVML_ERROR_${Exclude<ReturnCodeKey, "SUCCESS">}`
  | `NVML_ERROR_UNRECOGNIZED_${number}`;

const keyByCode = new Map<number, ReturnCodeKey>(
  (Object.entries(Rc) as [ReturnCodeKey, number][]).map(([key, code]) => [code, key]),
);

/** `NVML_ERROR_IN_USE` for 19; newer drivers may return codes this table does not know yet. */
export function returnCodeName(code: number): NvmlReturnName {
  const key = keyByCode.get(code);
  if (key === "SUCCESS") return "NVML_SUCCESS";
  if (key !== undefined) return `NVML_ERROR_${key}`;
  return `NVML_ERROR_UNRECOGNIZED_${code}`;
}

/** The short key (`IN_USE`) used in `TESSERA_NVML_<KEY>` error codes. */
export function returnCodeKey(code: number): string {
  return keyByCode.get(code) ?? `UNRECOGNIZED_${code}`;
}
