/**
 * What `tessera inspect` reports (and `-o json` prints): the node as
 * `nvidia-smi -q` would describe it. Values the driver does not support are
 * absent (undefined / omitted in JSON), never zero.
 */
export interface HostInventory {
  /** true when the NVML library is Tessera's simulator. */
  simulated: boolean;
  /** simulator preset, when simulated. */
  preset?: string;
  library: string;
  driverVersion: string;
  nvmlVersion: string;
  /** e.g. "13.0" */
  cudaDriverVersion: string;
  gpus: GpuReport[];
  /** GPU indexes NVML could not open (e.g. GPU_IS_LOST), with the error. */
  unavailableGpus: { index: number; error: string }[];
}

export interface GpuReport {
  index: number;
  name: string;
  uuid: string;
  serial?: string;
  /** NVML form, e.g. "00000000:1B:00.0" */
  pciBusId: string;
  /** e.g. "0x233010DE" */
  pciDeviceId: string;
  pciSubSystemId: string;
  minorNumber?: number;
  /** "Ampere", "Hopper", … */
  architecture: string;
  /** e.g. "9.0" */
  computeCapability: string;
  memory?: { totalMiB: number; reservedMiB?: number; usedMiB: number; freeMiB: number };
  utilization?: { gpuPercent: number; memoryPercent: number };
  temperatureC?: number;
  temperatureThresholdsC: { shutdown?: number; slowdown?: number; gpuMax?: number; memoryMax?: number };
  powerDrawWatts?: number;
  powerLimitWatts?: number;
  energyJoules?: number;
  clocksMHz: ClockSet;
  maxClocksMHz: ClockSet;
  clockEventReasons?: string[];
  ecc: {
    enabled?: boolean;
    pendingEnabled?: boolean;
    volatile?: { corrected: number; uncorrected: number };
    aggregate?: { corrected: number; uncorrected: number };
  };
  remappedRows?: { corrected: number; uncorrected: number; pending: boolean; failure: boolean };
  retiredPagesPending?: boolean;
  pcie: {
    currentGeneration?: number;
    maxGeneration?: number;
    currentWidth?: number;
    maxWidth?: number;
    replayCounter?: number;
  };
  mig?: {
    currentEnabled: boolean;
    pendingEnabled: boolean;
    devices: MigDeviceReport[];
  };
  processes: ProcessReport[];
}

export interface ClockSet {
  graphics?: number;
  sm?: number;
  memory?: number;
  video?: number;
}

export interface MigDeviceReport {
  /** MIG device index on its parent (can have holes) */
  index: number;
  uuid: string;
  name: string;
  /** e.g. "3g.40gb" or "1c.3g.40gb" */
  profile: string;
  gpuInstanceId: number;
  computeInstanceId: number;
  /** memory slices of the GPU instance */
  placement: { start: number; size: number };
  memory?: { totalMiB: number; usedMiB: number };
  processes: ProcessReport[];
}

export interface ProcessReport {
  pid: number;
  name?: string;
  usedMemoryMiB?: number;
  gpuInstanceId?: number;
  computeInstanceId?: number;
}
