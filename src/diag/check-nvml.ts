// The driver itself: NVML loads and initializes, its versions agree, this caller may manage MIG,
// and the host has the GPUs it should.

import { scanSysfsGpus } from "../fabric/index.js";
import type { DiagConfig } from "./config.js";
import type { MigCapabilityFacts } from "./context.js";
import { FactsUnavailableError, NvmlUnavailableError, ProbeFailedError } from "./errors.js";
import type { ProbeError, SystemFacts } from "./facts.js";
import { fail, fold, pass, seconds, warn } from "./findings.js";
import type { Check, Verdict } from "./types.js";

export type NvmlLibraryFacts =
  | { readonly ok: true; readonly system: SystemFacts }
  | { readonly ok: false; readonly error: ProbeError };

/** What to do when NVML does not come up, by NVML's return code. */
const OPEN_REMEDIATION: Record<string, string> = {
  NVML_ERROR_LIBRARY_NOT_FOUND:
    "Install the NVIDIA driver (it ships libnvidia-ml.so.1), or point --library / TESSERA_NVML_LIBRARY at it.",
  NVML_ERROR_DRIVER_NOT_LOADED:
    "The nvidia kernel module is not loaded: run `modprobe nvidia` and read dmesg for why it failed to load.",
  NVML_ERROR_LIB_RM_VERSION_MISMATCH:
    "The NVML library and the loaded kernel module come from different driver versions (a driver upgrade without a reboot): reboot the node, or unload and reload the nvidia modules.",
  NVML_ERROR_NO_PERMISSION: "Run as root, or as a user allowed to open /dev/nvidia*.",
};
const OPEN_DEFAULT =
  "NVML did not initialize: check `nvidia-smi`, dmesg for NVRM errors, and that nvidia-persistenced is running; drain the node if it stays broken.";

export const nvmlLibraryCheck: Check<NvmlLibraryFacts> = {
  id: "nvml.library",
  title: "NVML loads and initializes",
  level: "quick",
  reads: ["libnvidia-ml.so.1 (dlopen)", "nvmlInit_v2"],
  async gather(ctx) {
    try {
      return { ok: true, system: await ctx.nvml("system") };
    } catch (err) {
      if (err instanceof NvmlUnavailableError || err instanceof ProbeFailedError) {
        return { ok: false, error: err.probeError };
      }
      throw err;
    }
  },
  verdict(facts, config) {
    if (!facts.ok) {
      const remediation = OPEN_REMEDIATION[facts.error.nvmlCode ?? ""] ?? OPEN_DEFAULT;
      return { status: "fail", evidence: [facts.error.message], remediation };
    }
    const s = facts.system;
    const what = `${s.libraryPath}${s.simulated ? " (Tessera's simulated driver)" : ""}`;
    if (s.initMs >= config.thresholds.slowInitMs) {
      return fold([
        warn(
          `nvmlInit_v2 took ${seconds(s.initMs)} (warning at ${seconds(config.thresholds.slowInitMs)}); library ${what}`,
          "Slow initialization usually means the driver is torn down between clients: enable persistence mode (run nvidia-persistenced).",
        ),
      ]);
    }
    return fold([pass(`loaded ${what}; nvmlInit_v2 took ${Math.round(s.initMs)} ms`)]);
  },
};

export const nvmlVersionsCheck: Check<SystemFacts> = {
  id: "nvml.versions",
  title: "Driver, NVML and CUDA versions agree",
  level: "quick",
  reads: ["nvmlSystemGetDriverVersion", "nvmlSystemGetNVMLVersion", "nvmlSystemGetCudaDriverVersion_v2"],
  gather: (ctx) => ctx.nvml("system"),
  verdict: versionsVerdict,
};

/** NVML's version is `<CUDA major>.<driver version>` (e.g. 13.580.105.08 for driver 580.105.08, CUDA 13.0). */
export function versionsVerdict(s: SystemFacts): Verdict {
  const cuda = s.cudaDriverVersion ? `${s.cudaDriverVersion.major}.${s.cudaDriverVersion.minor}` : "unknown";
  const seen = `driver ${s.driverVersion ?? "unknown"}, NVML ${s.nvmlVersion ?? "unknown"}, CUDA ${cuda}`;
  const findings = s.versionErrors.map((e) =>
    warn(
      `${e.operation ?? "version query"} failed: ${e.message}`,
      "The driver did not report its versions: reinstall the driver package consistently (nvidia-smi should print all three).",
    ),
  );
  if (s.driverVersion !== undefined && s.nvmlVersion !== undefined) {
    const nvmlDriver = s.nvmlVersion.split(".").slice(1).join(".");
    if (nvmlDriver !== s.driverVersion) {
      findings.push(
        fail(
          `${seen}: the NVML library belongs to driver ${nvmlDriver || s.nvmlVersion}, the kernel runs ${s.driverVersion}`,
          "The userspace driver libraries and the kernel module are from different installs: reinstall one driver version and reboot (or reload the nvidia modules).",
        ),
      );
    }
  }
  if (s.nvmlVersion !== undefined && s.cudaDriverVersion !== undefined) {
    const nvmlMajor = s.nvmlVersion.split(".")[0];
    if (nvmlMajor !== String(s.cudaDriverVersion.major)) {
      findings.push(
        warn(
          `${seen}: NVML ${s.nvmlVersion} is for CUDA ${nvmlMajor}.x but the driver reports CUDA ${cuda}`,
          "Check for a second libcuda.so or libnvidia-ml.so on the library path (ldconfig -p | grep -E 'libcuda|libnvidia-ml') and remove the stray one.",
        ),
      );
    }
  } else if (s.cudaDriverVersion === undefined && s.versionErrors.length === 0) {
    findings.push(
      warn(`${seen}: the driver does not report a CUDA version`, "Reinstall the driver so libcuda matches it."),
    );
  }
  return fold(findings, { empty: pass(seen) });
}

export interface MigPermissionFacts {
  readonly capabilities: MigCapabilityFacts;
  readonly system: SystemFacts;
}

const MIG_PERMISSION_FIX =
  "Run tessera (and tessera-agent) as root, or give its user read access to the driver's MIG capabilities (/proc/driver/nvidia/capabilities/mig/config and …/monitor, through /dev/nvidia-caps; see NVIDIA's MIG user guide, 'Device Nodes and Capabilities'). Changing MIG mode also needs CAP_SYS_ADMIN.";

export const migPermissionsCheck: Check<MigPermissionFacts> = {
  id: "nvml.mig-permissions",
  title: "Permissions for MIG management",
  level: "quick",
  reads: ["geteuid()", "/proc/driver/nvidia/capabilities/mig/{config,monitor}", "nvmlDeviceGetMigMode"],
  async gather(ctx) {
    const system = await ctx.nvml("system");
    return { system, capabilities: await ctx.migCapabilities() };
  },
  verdict({ system, capabilities: c }) {
    const capable = system.gpus.filter((g) => g.migMode !== undefined);
    if (capable.length === 0)
      return { status: "skip", evidence: ["no GPU on this host supports MIG"], remediation: "" };
    const enabled = capable.filter((g) => g.migMode?.current);
    const who = c.euid === undefined ? "this process" : `uid ${c.euid}`;
    if (c.euid === 0)
      return fold([pass(`running as root: MIG can be configured on ${capable.length} MIG-capable GPUs`)]);
    if (c.config === "readable") {
      return fold([pass(`${who} can read mig/config: may create and destroy MIG instances`)]);
    }
    if (c.simulated && !c.directory) {
      return {
        status: "skip",
        evidence: ["simulated driver without /proc/driver/nvidia/capabilities/mig: MIG permissions are not enforced"],
        remediation: "",
      };
    }
    if (enabled.length > 0 && c.monitor !== "readable") {
      return fold([
        fail(
          `${who} can read neither mig/config (${c.config}) nor mig/monitor (${c.monitor}) while MIG is enabled on GPU ${enabled.map((g) => g.index).join(", ")}: it cannot even list the MIG instances`,
          MIG_PERMISSION_FIX,
        ),
      ]);
    }
    return fold([
      warn(
        `${who} cannot read mig/config (${c.config}): it may list MIG instances but not create or destroy them`,
        MIG_PERMISSION_FIX,
      ),
    ]);
  },
};

export interface GpuCountFacts {
  readonly deviceCount: number;
  /** NVIDIA 3D controllers on the PCI bus (sysfs); undefined without a sysfs source. */
  readonly pciCount: number | undefined;
}

const MISSING_GPU_FIX =
  "A GPU the host should have is not visible to the driver (it fell off the bus before the driver loaded, or failed to initialize): compare `lspci -d 10de:` with `nvidia-smi -L`, read dmesg for NVRM errors, then drain the node and reboot; reseat or RMA the GPU if it stays missing.";

export const gpuCountCheck: Check<GpuCountFacts> = {
  id: "gpu.count",
  title: "GPU count as expected",
  level: "quick",
  reads: ["nvmlDeviceGetCount_v2", "/sys/bus/pci/devices (NVIDIA 3D controllers)", "--expect-gpus"],
  async gather(ctx) {
    const { deviceCount } = await ctx.nvml("system");
    let pciCount: number | undefined;
    try {
      pciCount = scanSysfsGpus(ctx.fabricSource().sysfsRoot).length;
    } catch (err) {
      if (!(err instanceof FactsUnavailableError)) throw err;
    }
    return { deviceCount, pciCount };
  },
  verdict: gpuCountVerdict,
};

/** Judged against --expect-gpus, and against the PCI bus: a GPU the bus has and NVML lacks is missing. */
export function gpuCountVerdict(facts: GpuCountFacts, config: DiagConfig): Verdict {
  const expected = config.expectedGpuCount;
  const n = facts.deviceCount;
  const found = `NVML sees ${n} GPU${n === 1 ? "" : "s"}`;
  // No NVIDIA GPU on the bus at all means no PCI view (a container, the simulator), not eight missing GPUs.
  const pci = facts.pciCount !== undefined && facts.pciCount > 0 ? facts.pciCount : undefined;
  const onBus = pci === undefined ? "" : `, the PCI bus has ${pci}`;
  const findings = [];
  if (pci !== undefined && pci > n)
    findings.push(fail(`${found}${onBus}: ${pci - n} not initialized by the driver`, MISSING_GPU_FIX));
  if (expected !== undefined && n < expected) {
    findings.push(fail(`${found}${onBus}, expected ${expected}: ${expected - n} missing`, MISSING_GPU_FIX));
  } else if (expected !== undefined && n > expected) {
    findings.push(
      warn(
        `${found}, expected ${expected}`,
        "The host has more GPUs than configured: correct the expected count (--expect-gpus) if the hardware changed on purpose.",
      ),
    );
  }
  if (findings.length > 0) return fold(findings);
  if (expected === undefined && pci === undefined) {
    return { status: "skip", evidence: [`${found}; no expected count (pass --expect-gpus)`], remediation: "" };
  }
  const against = [expected === undefined ? "" : `as expected`, pci === undefined ? "" : `as on the PCI bus`]
    .filter((x) => x)
    .join(" and ");
  return fold([pass(`${found}, ${against}`)]);
}
