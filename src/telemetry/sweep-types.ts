// What one sampler sweep produces. Plain data (structured-clonable): the sampler runs on a worker
// thread that owns its own NVML handle and posts these to the main thread, which builds immutable
// node snapshots from them. Values the driver does not support are absent, never zero.

export interface DriverReading {
  readonly driverVersion: string;
  readonly nvmlVersion: string;
  /** e.g. "13.0"; empty when the driver cannot tell. */
  readonly cudaDriverVersion: string;
  readonly libraryPath: string;
  readonly simulated: boolean;
  /** Simulator preset, when simulated. */
  readonly simulatorPreset: string;
}

/** Facts about a GPU that do not change while it is present (read once per UUID). */
export interface GpuIdentity {
  readonly index: number;
  readonly uuid: string;
  readonly name: string;
  /** NVML form: `00000000:1B:00.0`. */
  readonly pciBusId: string;
  readonly pciDeviceId: number;
  readonly pciSubSystemId: number;
  readonly minorNumber: number | undefined;
  readonly serial: string | undefined;
  readonly architecture: string;
  readonly computeCapability: string;
  readonly memoryTotalMiB: number;
  readonly maxSmClockMHz: number | undefined;
  readonly maxMemoryClockMHz: number | undefined;
  readonly pcieMaxGeneration: number | undefined;
  readonly pcieMaxWidth: number | undefined;
  readonly slowdownTemperatureC: number | undefined;
  readonly shutdownTemperatureC: number | undefined;
  readonly migCapable: boolean;
}

export interface ProcessReading {
  readonly pid: number;
  readonly name: string | undefined;
  readonly usedMemoryMiB: number | undefined;
}

export interface MigDeviceReading {
  readonly migIndex: number;
  readonly uuid: string;
  readonly gpuInstanceId: number;
  readonly computeInstanceId: number;
  /** `3g.40gb`, or `1c.3g.40gb` for a compute instance smaller than its GPU instance. */
  readonly profileName: string;
  readonly memoryUsedMiB: number | undefined;
  readonly memoryTotalMiB: number | undefined;
  readonly processes: readonly ProcessReading[];
}

export interface RemappedRowsReading {
  readonly corrected: number;
  readonly uncorrected: number;
  readonly pending: boolean;
  readonly failure: boolean;
}

export interface GpuTelemetry {
  readonly utilizationPercent: number | undefined;
  readonly memoryUtilizationPercent: number | undefined;
  readonly memoryUsedMiB: number | undefined;
  readonly memoryFreeMiB: number | undefined;
  readonly memoryReservedMiB: number | undefined;
  readonly temperatureC: number | undefined;
  readonly powerMilliwatts: number | undefined;
  readonly powerLimitMilliwatts: number | undefined;
  readonly energyMillijoules: number | undefined;
  readonly smClockMHz: number | undefined;
  readonly memoryClockMHz: number | undefined;
  readonly clockEventReasons: bigint | undefined;
  readonly clockEventReasonNames: readonly string[];
  readonly eccEnabled: boolean | undefined;
  readonly eccCorrectedVolatile: number | undefined;
  readonly eccUncorrectedVolatile: number | undefined;
  readonly eccCorrectedAggregate: number | undefined;
  readonly eccUncorrectedAggregate: number | undefined;
  readonly remappedRows: RemappedRowsReading | undefined;
  readonly retiredPagesPending: boolean | undefined;
  readonly pcieReplayCounter: number | undefined;
  readonly pcieGeneration: number | undefined;
  readonly pcieWidth: number | undefined;
  /** Processes on the whole GPU (not on a MIG device). */
  readonly processes: readonly ProcessReading[];
  readonly migDevices: readonly MigDeviceReading[];
}

export interface MigProfileReading {
  readonly id: number;
  readonly name: string;
  readonly sliceCount: number;
  readonly memorySlices: number;
  readonly memoryMiB: number;
  readonly multiprocessorCount: number;
  readonly maxInstances: number;
  readonly placementStarts: readonly number[];
}

export interface ComputeInstanceReading {
  readonly computeInstanceId: number;
  readonly profileId: number;
  readonly profileName: string;
  readonly uuid: string;
  readonly processIds: readonly number[];
}

export interface GpuInstanceReading {
  readonly gpuInstanceId: number;
  readonly profileId: number;
  readonly profileName: string;
  readonly placement: { readonly start: number; readonly size: number };
  readonly computeInstances: readonly ComputeInstanceReading[];
}

export interface FragmentationReading {
  readonly freeMemorySlices: number;
  /** Free slices no legal placement of any profile can use. */
  readonly strandedMemorySlices: number;
  /** Largest profile that still fits; empty when none does. */
  readonly largestFittingProfile: string;
  readonly fits: readonly { readonly profileName: string; readonly count: number }[];
  /** 0 (every free slice usable by the largest profile that fits) … 1. */
  readonly score: number;
}

export interface MigReading {
  readonly enabled: boolean;
  readonly pendingEnabled: boolean;
  /** 0 until the geometry is known (NVML shows it only while MIG is on). */
  readonly memorySliceCount: number;
  readonly profiles: readonly MigProfileReading[];
  readonly instances: readonly GpuInstanceReading[];
  readonly fragmentation: FragmentationReading | undefined;
  /** `[3g.40gb    |2g.20|1g|--]`, as `tessera mig` draws it. */
  readonly slotMap: string;
  /** The layout as mig-parted counts it (`3g.40gb: 1`), for exports. */
  readonly exportedDevices: Readonly<Record<string, number>>;
}

export interface GpuReading {
  readonly identity: GpuIdentity;
  /** NVML answers GPU_IS_LOST for this GPU; telemetry is empty. */
  readonly lost: boolean;
  readonly telemetry: GpuTelemetry | undefined;
  /** Absent on GPUs without MIG. */
  readonly mig: MigReading | undefined;
}

export interface UnavailableGpuReading {
  readonly index: number;
  readonly error: string;
  readonly code: string;
}

export interface NvmlErrorCount {
  readonly code: string;
  readonly operation: string;
  readonly count: number;
}

export type PortVerdictName = "healthy" | "degraded" | "flapping" | "down" | "missing";

export interface FabricPortReading {
  readonly key: string;
  readonly device: string;
  readonly port: number;
  readonly linkLayer: string;
  readonly state: string;
  readonly physicalState: string;
  readonly rateGbps: number | undefined;
  readonly up: boolean | undefined;
  readonly pciAddress: string;
  readonly netdevs: readonly string[];
  readonly verdict: PortVerdictName;
  readonly reasons: readonly string[];
  /** Error counters that rose in the last interval, per second. */
  readonly errorRatesPerSec: Readonly<Record<string, number>>;
  /** Data rates over the last interval (PMA data counters). */
  readonly rxGbps: number | undefined;
  readonly txGbps: number | undefined;
}

export interface GpuNicReading {
  readonly gpuIndex: number;
  readonly gpuUuid: string;
  readonly nearestNic: string;
  readonly distance: string;
  readonly rdmaDegraded: boolean;
}

export interface LinkChange {
  readonly device: string;
  readonly port: number;
  readonly previous: string;
  readonly current: string;
  readonly reasons: readonly string[];
}

export interface FabricSweep {
  readonly atMs: number;
  readonly ports: readonly FabricPortReading[];
  readonly topology: readonly GpuNicReading[];
  readonly changes: readonly LinkChange[];
  readonly durationMs: number;
  /** Why the fabric could not be read (no sysfs root), when it could not. */
  readonly error: string | undefined;
}

export interface SweepResult {
  /** 1, 2, … since the sampler started. */
  readonly sweep: number;
  /** When the sweep was due and when it started (epoch ms; the difference is the sampler's jitter). */
  readonly scheduledAtMs: number;
  readonly startedAtMs: number;
  readonly durationMs: number;
  readonly driver: DriverReading;
  readonly gpus: readonly GpuReading[];
  readonly unavailable: readonly UnavailableGpuReading[];
  /** NVML errors of this sweep (other than NOT_SUPPORTED, which means absent). */
  readonly nvmlErrors: readonly NvmlErrorCount[];
  readonly slowestCall: { readonly operation: string; readonly ms: number } | undefined;
  /** Present on sweeps that also read the fabric. */
  readonly fabric: FabricSweep | undefined;
}
