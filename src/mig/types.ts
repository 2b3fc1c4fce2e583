// Domain types of the MIG manager. Geometry (profiles, placements) is data
// learned from NVML at run time; nothing here encodes a particular GPU model.

/**
 * NVML's GPU-instance profile *index* constants (`NVML_GPU_INSTANCE_PROFILE_*`),
 * the argument of `nvmlDeviceGetGpuInstanceProfileInfo*`. They are API
 * constants, not geometry: the device-specific profile ID comes back in the
 * profile info and is what every other call takes.
 */
export const GpuInstanceProfileIndex = {
  ONE_SLICE: 0x0,
  TWO_SLICE: 0x1,
  THREE_SLICE: 0x2,
  FOUR_SLICE: 0x3,
  SEVEN_SLICE: 0x4,
  EIGHT_SLICE: 0x5,
  SIX_SLICE: 0x6,
  ONE_SLICE_REV1: 0x7,
  TWO_SLICE_REV1: 0x8,
  ONE_SLICE_REV2: 0x9,
  ONE_SLICE_GFX: 0xa,
  TWO_SLICE_GFX: 0xb,
  FOUR_SLICE_GFX: 0xc,
  ONE_SLICE_NO_ME: 0xd,
  TWO_SLICE_NO_ME: 0xe,
  ONE_SLICE_ALL_ME: 0xf,
  TWO_SLICE_ALL_ME: 0x10,
  THREE_SLICE_GFX: 0x11,
} as const;

/** Engines a GPU instance owns (`-lgip` columns CE, DEC, ENC, JPEG, OFA). */
export interface MigEngines {
  readonly copy: number;
  readonly decoder: number;
  readonly encoder: number;
  readonly jpeg: number;
  readonly ofa: number;
}

/** A placement in memory slices, as `nvmlGpuInstancePlacement_t`. */
export interface Placement {
  readonly start: number;
  readonly size: number;
}

// ---- raw NVML data (input of buildGeometry) ----

/** One compute-instance profile inside a GPU-instance profile, as NVML reports it. */
export interface NvmlComputeInstanceProfile {
  /** NVML CI profile index constant. */
  readonly index: number;
  /** Device-specific CI profile ID (what CreateComputeInstance takes). */
  readonly id: number;
  readonly sliceCount: number;
  readonly multiprocessorCount: number;
  /** `instanceCount`: how many of this CI fit in one GI of the parent profile. */
  readonly instanceCount: number;
}

/** One GPU-instance profile, as NVML reports it (`nvmlGpuInstanceProfileInfo_v2/v3` + possible placements). */
export interface NvmlGpuInstanceProfile {
  readonly index: number;
  readonly id: number;
  readonly sliceCount: number;
  readonly memorySizeMiB: number;
  readonly multiprocessorCount: number;
  readonly engines: MigEngines;
  /** `instanceCount`: the most instances of this profile a GPU can hold. */
  readonly instanceCount: number;
  /** `nvmlDeviceGetGpuInstancePossiblePlacements_v2` on an empty GPU. */
  readonly placements: readonly Placement[];
  readonly computeProfiles: readonly NvmlComputeInstanceProfile[];
}

/** What the NVML layer learns about one GPU model; `buildGeometry` turns it into a `GpuGeometry`. */
export interface GeometryInput {
  /** `nvmlDeviceGetName`, e.g. `NVIDIA H100 80GB HBM3`. */
  readonly model: string;
  /** Combined device and vendor id, `nvmlPciInfo_t.pciDeviceId`, e.g. 0x233010DE. */
  readonly pciDeviceId: number;
  /** `nvmlDeviceGetMemoryInfo(parent).total` in MiB: drives profile names. */
  readonly totalMemoryMiB: number;
  readonly profiles: readonly NvmlGpuInstanceProfile[];
}

// ---- geometry (derived, what the manager works with) ----

export interface ComputeProfile {
  readonly id: number;
  readonly index: number;
  readonly sliceCount: number;
  readonly multiprocessorCount: number;
  readonly maxInstances: number;
  /** As NVIDIA's tools print it: `1c.3g.40gb`, or the GI name for the full-size CI. */
  readonly name: string;
}

export interface MigProfile {
  /** Device-specific GPU-instance profile ID. */
  readonly id: number;
  /** NVML profile index constant (`GpuInstanceProfileIndex`). */
  readonly index: number;
  /** `1g.10gb`, `1g.10gb+me`, `3g.40gb`: derived with go-nvlib's formula. */
  readonly name: string;
  /** Compute (GPU) slices: the `g` of the name. */
  readonly sliceCount: number;
  /** Memory slices one instance occupies: its placement size. */
  readonly memorySlices: number;
  readonly memoryMiB: number;
  readonly multiprocessorCount: number;
  readonly engines: MigEngines;
  readonly maxInstances: number;
  /** Legal placement starts, ascending. */
  readonly placements: readonly number[];
  /** Positive name attributes (`me`, `me.all`, `gfx`). */
  readonly attributes: readonly string[];
  /** Negative name attributes (`-me`). */
  readonly negativeAttributes: readonly string[];
  /** Owns the GPU's media extensions (`+me`, `+me.all`): at most one such instance per GPU. */
  readonly mediaExtensions: boolean;
  readonly computeProfiles: readonly ComputeProfile[];
  /** The CI profile spanning the whole GI: what mig-parted creates for `3g.40gb`. */
  readonly defaultComputeProfileId: number;
}

export interface GpuGeometry {
  readonly model: string;
  readonly pciDeviceId: number;
  readonly totalMemoryMiB: number;
  /** 8 on A100/H100/H200/B200, 4 on A30. */
  readonly memorySliceCount: number;
  /** Compute slices of the whole GPU (7 on 8-memory-slice GPUs, 4 on A30). */
  readonly computeSliceCount: number;
  readonly profiles: readonly MigProfile[];
}

// ---- current state (read from NVML) ----

export type MigMode = "enabled" | "disabled";

export interface ComputeInstanceState {
  readonly ciId: number;
  readonly profileId: number;
  /** MIG device UUID (`MIG-…`). */
  readonly uuid: string;
  /** Processes running on this MIG device; non-empty means busy. */
  readonly processIds: readonly number[];
}

export interface GpuInstanceState {
  readonly giId: number;
  readonly profileId: number;
  readonly placement: Placement;
  readonly computeInstances: readonly ComputeInstanceState[];
}

export interface GpuLayout {
  readonly mode: { readonly current: MigMode; readonly pending: MigMode };
  readonly instances: readonly GpuInstanceState[];
}

/** A GPU of the host as the manager sees it. `geometry` is null when the GPU is not MIG-capable. */
export interface HostGpu {
  readonly index: number;
  readonly uuid: string;
  readonly model: string;
  readonly pciDeviceId: number;
  readonly pciSubsystemId: number;
  readonly geometry: GpuGeometry | null;
  readonly layout: GpuLayout;
}

// ---- desired state ----

export interface DesiredInstance {
  readonly profileId: number;
  /** Pinned placement start, or null to let the planner choose. */
  readonly start: number | null;
  /** CI profile IDs inside this GI (one per CI), largest first. */
  readonly computeProfileIds: readonly number[];
}

export interface DesiredLayout {
  readonly mode: MigMode;
  readonly instances: readonly DesiredInstance[];
}
