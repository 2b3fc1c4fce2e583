// The facts NVML probes gather, grouped in families. A family is the unit that runs on its own
// thread in the probe host (probe-host.ts), so one hung NVML call holds up one family only.
// Everything here is plain data: it crosses a process boundary (structured clone).
import type {
  ClockEventReason,
  EccErrorCounts,
  EnableState,
  MigMode,
  PcieLink,
  RemappedRows,
  RetiredPages,
} from "../nvml/index.js";

/** An NVML failure as data (NvmlError does not survive a process boundary). */
export interface ProbeError {
  readonly message: string;
  /** TESSERA_… code when the error was a TesseraError. */
  readonly code?: string;
  /** NVML_ERROR_… name when it came from NVML. */
  readonly nvmlCode?: string;
  /** The NVML function that failed. */
  readonly operation?: string;
}

/** How one GPU answered a family: its facts, or the error that stopped its probe. */
export type GpuProbe<T> =
  | { readonly index: number; readonly facts: T; readonly error?: undefined }
  | { readonly index: number; readonly facts?: undefined; readonly error: ProbeError };

export interface CallTiming {
  readonly operation: string;
  readonly ms: number;
}

export interface GpuIdentity {
  readonly index: number;
  readonly uuid: string | undefined;
  readonly name: string | undefined;
  /** NVML form, e.g. `00000000:1B:00.0`. */
  readonly pciBusId: string | undefined;
  readonly architecture: string | undefined;
  /** Absent on GPUs without MIG. */
  readonly migMode: MigMode | undefined;
  /** Why the GPU could not be opened or identified (e.g. NVML_ERROR_GPU_IS_LOST). */
  readonly error: ProbeError | undefined;
  /** The slowest identity call, to spot a GPU that answers but struggles. */
  readonly slowestCall: CallTiming | undefined;
}

export interface SystemFacts {
  readonly libraryPath: string;
  readonly simulated: boolean;
  /** How long nvmlInit_v2 (with loading) took in the probe. */
  readonly initMs: number;
  readonly missingSymbols: readonly string[];
  readonly driverVersion: string | undefined;
  readonly nvmlVersion: string | undefined;
  readonly cudaDriverVersion: { readonly major: number; readonly minor: number } | undefined;
  /** Errors reading the versions, by NVML function. */
  readonly versionErrors: readonly ProbeError[];
  readonly deviceCount: number;
  readonly gpus: readonly GpuIdentity[];
}

export interface MemoryFacts {
  readonly eccMode: EnableState | undefined;
  readonly ecc: EccErrorCounts;
  /** Absent before Ampere and while MIG is enabled. */
  readonly remappedRows: RemappedRows | undefined;
  readonly retiredPages: RetiredPages;
  readonly migEnabled: boolean | undefined;
}

export interface ClockFacts {
  /** Set clock-event (throttle) reasons; absent when the driver cannot say. */
  readonly reasons: readonly (ClockEventReason | `0x${string}`)[] | undefined;
  readonly temperatureC: number | undefined;
  readonly slowdownC: number | undefined;
  readonly powerMilliwatts: number | undefined;
  readonly powerLimitMilliwatts: number | undefined;
}

export interface PcieFacts {
  readonly link: PcieLink;
  readonly replays: number | undefined;
  /** Absent on a MIG-enabled GPU (NVML does not report it). */
  readonly utilizationPercent: number | undefined;
  /** Compute processes on the GPU and its MIG devices. */
  readonly processCount: number | undefined;
}

export interface MigInstanceFacts {
  readonly id: number;
  readonly profileId: number;
  readonly profileName: string | undefined;
  readonly placement: { readonly start: number; readonly size: number };
  readonly computeInstanceIds: readonly number[];
}

export interface MigDeviceFacts {
  readonly uuid: string;
  readonly gpuInstanceId: number;
  readonly computeInstanceId: number;
  readonly processCount: number | undefined;
}

export interface MigFacts {
  readonly uuid: string | undefined;
  readonly architecture: string | undefined;
  /** Absent on GPUs without MIG. */
  readonly mode: MigMode | undefined;
  readonly gpuInstances: readonly MigInstanceFacts[];
  readonly migDevices: readonly MigDeviceFacts[];
}

/** Clock-event reasons sampled over the window: share of samples each reason was set. */
export interface ThrottleResidencyFacts {
  readonly samples: number;
  readonly residency: Readonly<Partial<Record<ClockEventReason, number>>>;
}

export interface CounterReading {
  readonly atMs: number;
  readonly ecc: EccErrorCounts;
  readonly replays: number | undefined;
  readonly link: PcieLink;
}

export interface CounterWindowFacts {
  readonly start: CounterReading;
  readonly end: CounterReading;
}

export interface XidEventFact {
  readonly gpuIndex: number | undefined;
  readonly code: number;
  readonly gpuInstanceId: number | undefined;
  readonly computeInstanceId: number | undefined;
  readonly atMs: number;
}

export interface EventWindowFacts {
  readonly windowMs: number;
  /** GPUs whose XID events were watched. */
  readonly watchedGpus: readonly number[];
  readonly xids: readonly XidEventFact[];
}

/** Facts of each NVML probe family. */
export interface ProbeFamilies {
  system: SystemFacts;
  memory: readonly GpuProbe<MemoryFacts>[];
  clocks: readonly GpuProbe<ClockFacts>[];
  pcie: readonly GpuProbe<PcieFacts>[];
  mig: readonly GpuProbe<MigFacts>[];
  "clocks-window": readonly GpuProbe<ThrottleResidencyFacts>[];
  "counters-window": readonly GpuProbe<CounterWindowFacts>[];
  "events-window": EventWindowFacts;
}

export type ProbeFamily = keyof ProbeFamilies;

export const PROBE_FAMILIES: readonly ProbeFamily[] = [
  "system",
  "memory",
  "clocks",
  "pcie",
  "mig",
  "clocks-window",
  "counters-window",
  "events-window",
];

export interface ProbeParams {
  /** Sampling window of the windowed families; ignored by the others. */
  readonly windowMs: number;
  /** Interval between samples of clocks-window. */
  readonly sampleIntervalMs: number;
}

/** Where a probe is right now: the NVML call it is inside of, and since when. */
export interface ProbeProgress {
  readonly operation: string;
  readonly gpu: number | undefined;
  readonly sinceMs: number;
}
