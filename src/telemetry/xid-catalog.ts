// XIDs operators act on (reference/monitoring.md §2.3): NVIDIA's catalog action and what each means
// for the GPU's health. "app" XIDs are application faults (the GPU stays healthy, as the Kubernetes
// device plugin treats them); "warn" ones degrade the GPU (no new work until looked at); "fatal" ones
// make it unhealthy until the hold window passes or the GPU is reset.

export type XidSeverity = "app" | "warn" | "fatal";

export interface XidEntry {
  readonly code: number;
  readonly mnemonic: string;
  readonly description: string;
  /** NVIDIA's immediate resolution bucket ("RESET_GPU", "RESTART_APP", …). */
  readonly action: string;
  readonly severity: XidSeverity;
}

const ENTRIES: readonly XidEntry[] = [
  {
    code: 13,
    mnemonic: "ROBUST_CHANNEL_GR_EXCEPTION",
    description: "Graphics Engine Exception",
    action: "RESTART_APP",
    severity: "app",
  },
  {
    code: 31,
    mnemonic: "ROBUST_CHANNEL_FIFO_ERROR_MMU_ERR_FLT",
    description: "GPU memory page fault",
    action: "RESTART_APP",
    severity: "app",
  },
  {
    code: 43,
    mnemonic: "ROBUST_CHANNEL_RESETCHANNEL_VERIF_ERROR",
    description: "GPU stopped processing",
    action: "IGNORE",
    severity: "app",
  },
  {
    code: 45,
    mnemonic: "ROBUST_CHANNEL_PREEMPTIVE_REMOVAL",
    description: "Preemptive cleanup due to previous errors",
    action: "WORKFLOW_XID_45",
    severity: "app",
  },
  {
    code: 48,
    mnemonic: "ROBUST_CHANNEL_GPU_ECC_DBE",
    description: "Double Bit ECC Error",
    action: "WORKFLOW_XID_48",
    severity: "fatal",
  },
  {
    code: 61,
    mnemonic: "PMU_BREAKPOINT",
    description: "Internal micro-controller breakpoint/warning",
    action: "CONTACT_SUPPORT",
    severity: "warn",
  },
  {
    code: 62,
    mnemonic: "PMU_HALT_ERROR",
    description: "Internal micro-controller halt",
    action: "RESET_GPU",
    severity: "fatal",
  },
  {
    code: 63,
    mnemonic: "INFOROM_DRAM_RETIREMENT_EVENT",
    description: "Memory remapping/retirement event; reset the GPU at the next idle to apply it",
    action: "IGNORE",
    severity: "warn",
  },
  {
    code: 64,
    mnemonic: "INFOROM_DRAM_RETIREMENT_FAILURE",
    description: "Memory remapping/retirement failure",
    action: "RESET_GPU",
    severity: "fatal",
  },
  { code: 74, mnemonic: "NVLINK_ERROR", description: "NVLink error", action: "WORKFLOW_NVLINK_ERR", severity: "fatal" },
  {
    code: 79,
    mnemonic: "ROBUST_CHANNEL_GPU_HAS_FALLEN_OFF_THE_BUS",
    description: "GPU has fallen off the bus",
    action: "RESTART_BM",
    severity: "fatal",
  },
  {
    code: 92,
    mnemonic: "EXCESSIVE_SBE_INTERRUPTS",
    description: "High single-bit ECC error rate",
    action: "IGNORE",
    severity: "warn",
  },
  {
    code: 94,
    mnemonic: "ROBUST_CHANNEL_CONTAINED_ERROR",
    description: "Contained memory error",
    action: "RESTART_APP",
    severity: "warn",
  },
  {
    code: 95,
    mnemonic: "ROBUST_CHANNEL_UNCONTAINED_ERROR",
    description: "Uncontained memory error",
    action: "RESET_GPU",
    severity: "fatal",
  },
  {
    code: 109,
    mnemonic: "ROBUST_CHANNEL_CTXSW_TIMEOUT_ERROR",
    description: "Context Switch Timeout",
    action: "RESET_GPU",
    severity: "warn",
  },
  { code: 119, mnemonic: "GSP_RPC_TIMEOUT", description: "GSP RPC Timeout", action: "RESET_GPU", severity: "fatal" },
  { code: 120, mnemonic: "GSP_ERROR", description: "GSP Error", action: "RESET_GPU", severity: "fatal" },
  {
    code: 140,
    mnemonic: "UNRECOVERABLE_ECC_ERROR_ESCAPE",
    description: "ECC Unrecovered Error",
    action: "RESET_GPU",
    severity: "fatal",
  },
  {
    code: 154,
    mnemonic: "GPU_RECOVERY_ACTION_CHANGED",
    description: "The required recovery action for a preceding XID changed",
    action: "XID_154",
    severity: "warn",
  },
];

const BY_CODE = new Map(ENTRIES.map((e) => [e.code, e]));

/** NVML reports 999 when the driver's XID is not one it knows. */
export const NVML_UNKNOWN_XID = 999;

/** The catalog entry; an XID not in the table degrades the GPU and asks for a look at NVIDIA's catalog. */
export function lookupXid(code: number): XidEntry {
  return (
    BY_CODE.get(code) ?? {
      code,
      mnemonic: code === NVML_UNKNOWN_XID ? "UNKNOWN" : `XID_${code}`,
      description:
        code === NVML_UNKNOWN_XID
          ? "XID the driver could not name"
          : "XID not in Tessera's catalog; see docs.nvidia.com/deploy/xid-errors",
      action: "INVESTIGATE",
      severity: "warn",
    }
  );
}

export function xidCatalog(): readonly XidEntry[] {
  return ENTRIES;
}
