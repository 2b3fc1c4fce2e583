// Test data: what NVML reports on the reference GPUs (reference/nvml.md §4.1–4.3),
// fed through buildGeometry exactly as the agent feeds real NVML answers.
// This table lives in tests only; the manager learns geometry at run time.

import { buildGeometry } from "../../src/mig/geometry.js";
import type {
  GeometryInput,
  GpuGeometry,
  GpuInstanceState,
  GpuLayout,
  HostGpu,
  MigEngines,
  NvmlComputeInstanceProfile,
  NvmlGpuInstanceProfile,
} from "../../src/mig/types.js";

type Engines = readonly [copy: number, decoder: number, encoder: number, jpeg: number, ofa: number];

function engines([copy, decoder, encoder, jpeg, ofa]: Engines): MigEngines {
  return { copy, decoder, encoder, jpeg, ofa };
}

/** CI profiles NVML lists inside a GI of `g` slices (§4.3); IDs equal indices. */
function computeProfiles(
  g: number,
  smPerSlice: number,
  giSm: number,
  fullIndex?: number,
): NvmlComputeInstanceProfile[] {
  const ci = (index: number, sliceCount: number, instanceCount: number): NvmlComputeInstanceProfile => ({
    index,
    id: index,
    sliceCount,
    multiprocessorCount: sliceCount === g ? giSm : sliceCount * smPerSlice,
    instanceCount,
  });
  switch (g) {
    case 1:
      return [ci(fullIndex ?? 0, 1, 1)];
    case 2:
      return [ci(0, 1, 2), ci(1, 2, 1)];
    case 3:
      return [ci(0, 1, 3), ci(1, 2, 1), ci(2, 3, 1)];
    case 4:
      return [ci(0, 1, 4), ci(1, 2, 2), ci(3, 4, 1)];
    case 7:
      return [ci(0, 1, 7), ci(1, 2, 3), ci(2, 3, 2), ci(3, 4, 1), ci(4, 7, 1)];
    default:
      throw new Error(`no CI table for ${g}g`);
  }
}

interface GiRow {
  readonly index: number;
  readonly id: number;
  readonly g: number;
  readonly memoryMiB: number;
  readonly sm: number;
  readonly engines: Engines;
  readonly max: number;
  readonly starts: readonly number[];
  readonly size: number;
  /** CI index of the full-size CI of a 1-slice GI (REV1 on H100 1g.20gb). */
  readonly fullCiIndex?: number;
}

function gi(row: GiRow, smPerSlice: number): NvmlGpuInstanceProfile {
  return {
    index: row.index,
    id: row.id,
    sliceCount: row.g,
    memorySizeMiB: row.memoryMiB,
    multiprocessorCount: row.sm,
    engines: engines(row.engines),
    instanceCount: row.max,
    placements: row.starts.map((start) => ({ start, size: row.size })),
    computeProfiles: computeProfiles(row.g, smPerSlice, row.sm, row.fullCiIndex),
  };
}

const ALL7 = [0, 1, 2, 3, 4, 5, 6];

function eightSlice(
  model: string,
  pciDeviceId: number,
  totalMemoryMiB: number,
  smPerSlice: number,
  rows: Omit<GiRow, "starts" | "size" | "max" | "index" | "id">[],
): GeometryInput {
  // Index, ID, placements and instance counts are the same on every 8-slice GPU (§4.1).
  const fixed = [
    { index: 0, id: 19, starts: ALL7, size: 1, max: 7 },
    { index: 7, id: 20, starts: ALL7, size: 1, max: 1 },
    { index: 9, id: 15, starts: [0, 2, 4, 6], size: 2, max: 4 },
    { index: 1, id: 14, starts: [0, 2, 4], size: 2, max: 3 },
    { index: 2, id: 9, starts: [0, 4], size: 4, max: 2 },
    { index: 3, id: 5, starts: [0], size: 4, max: 1 },
    { index: 4, id: 0, starts: [0], size: 8, max: 1 },
  ];
  return {
    model,
    pciDeviceId,
    totalMemoryMiB,
    profiles: rows.map((row, i) => gi({ ...row, ...(fixed[i] as (typeof fixed)[number]) }, smPerSlice)),
  };
}

// Rows in the order of `fixed`: 1g, 1g+me, 1g×2mem, 2g, 3g, 4g, 7g. Engines: CE, DEC, ENC, JPEG, OFA.
export const H100_80GB_INPUT = eightSlice("NVIDIA H100 80GB HBM3", 0x233010de, 81559, 16, [
  { g: 1, memoryMiB: 9984, sm: 16, engines: [1, 1, 0, 1, 0] },
  { g: 1, memoryMiB: 9984, sm: 16, engines: [1, 1, 0, 1, 1] },
  { g: 1, memoryMiB: 20096, sm: 26, engines: [1, 1, 0, 1, 0], fullCiIndex: 7 },
  { g: 2, memoryMiB: 20096, sm: 32, engines: [2, 2, 0, 2, 0] },
  { g: 3, memoryMiB: 40448, sm: 60, engines: [3, 3, 0, 3, 0] },
  { g: 4, memoryMiB: 40448, sm: 64, engines: [4, 4, 0, 4, 0] },
  { g: 7, memoryMiB: 81152, sm: 132, engines: [8, 7, 0, 7, 1] },
]);

export const A100_40GB_INPUT = eightSlice("NVIDIA A100-SXM4-40GB", 0x20b010de, 40960, 14, [
  { g: 1, memoryMiB: 4864, sm: 14, engines: [1, 0, 0, 0, 0] },
  { g: 1, memoryMiB: 4864, sm: 14, engines: [1, 1, 0, 1, 1] },
  { g: 1, memoryMiB: 9856, sm: 14, engines: [1, 1, 0, 0, 0] },
  { g: 2, memoryMiB: 9856, sm: 28, engines: [2, 1, 0, 0, 0] },
  { g: 3, memoryMiB: 19968, sm: 42, engines: [3, 2, 0, 0, 0] },
  { g: 4, memoryMiB: 19968, sm: 56, engines: [4, 2, 0, 0, 0] },
  { g: 7, memoryMiB: 40192, sm: 98, engines: [7, 5, 0, 1, 1] },
]);

export const A100_80GB_INPUT = eightSlice("NVIDIA A100-SXM4-80GB", 0x20b210de, 81920, 14, [
  { g: 1, memoryMiB: 9728, sm: 14, engines: [1, 0, 0, 0, 0] },
  { g: 1, memoryMiB: 9728, sm: 14, engines: [1, 1, 0, 1, 1] },
  { g: 1, memoryMiB: 19968, sm: 14, engines: [1, 1, 0, 0, 0] },
  { g: 2, memoryMiB: 19968, sm: 28, engines: [2, 1, 0, 0, 0] },
  { g: 3, memoryMiB: 40192, sm: 42, engines: [3, 2, 0, 0, 0] },
  { g: 4, memoryMiB: 40192, sm: 56, engines: [4, 2, 0, 0, 0] },
  { g: 7, memoryMiB: 81152, sm: 98, engines: [7, 5, 0, 1, 1] },
]);

export const H200_141GB_INPUT = eightSlice("NVIDIA H200", 0x233510de, 143771, 16, [
  { g: 1, memoryMiB: 17920, sm: 16, engines: [1, 1, 0, 1, 0] },
  { g: 1, memoryMiB: 17920, sm: 16, engines: [1, 1, 0, 1, 1] },
  { g: 1, memoryMiB: 35840, sm: 26, engines: [1, 1, 0, 1, 0], fullCiIndex: 7 },
  { g: 2, memoryMiB: 35840, sm: 32, engines: [2, 2, 0, 2, 0] },
  { g: 3, memoryMiB: 71680, sm: 60, engines: [3, 3, 0, 3, 0] },
  { g: 4, memoryMiB: 71680, sm: 64, engines: [4, 4, 0, 4, 0] },
  { g: 7, memoryMiB: 143360, sm: 132, engines: [8, 7, 0, 7, 1] },
]);

// §4.2: the A30 has 4 memory slices and its own profile IDs.
export const A30_24GB_INPUT: GeometryInput = {
  model: "NVIDIA A30",
  pciDeviceId: 0x20b710de,
  totalMemoryMiB: 24576,
  profiles: (
    [
      {
        index: 0,
        id: 14,
        g: 1,
        memoryMiB: 5952,
        sm: 14,
        engines: [1, 1, 0, 0, 0],
        max: 4,
        starts: [0, 1, 2, 3],
        size: 1,
      },
      {
        index: 7,
        id: 21,
        g: 1,
        memoryMiB: 5952,
        sm: 14,
        engines: [1, 1, 0, 1, 1],
        max: 1,
        starts: [0, 1, 2, 3],
        size: 1,
      },
      { index: 1, id: 5, g: 2, memoryMiB: 11968, sm: 28, engines: [2, 2, 0, 0, 0], max: 2, starts: [0, 2], size: 2 },
      { index: 8, id: 6, g: 2, memoryMiB: 11968, sm: 28, engines: [2, 2, 0, 1, 1], max: 1, starts: [0, 2], size: 2 },
      { index: 3, id: 0, g: 4, memoryMiB: 24064, sm: 56, engines: [4, 4, 0, 1, 1], max: 1, starts: [0], size: 4 },
    ] satisfies GiRow[]
  ).map((row) => gi(row, 14)),
};

export const H100_80GB = buildGeometry(H100_80GB_INPUT);
export const A100_40GB = buildGeometry(A100_40GB_INPUT);
export const A100_80GB = buildGeometry(A100_80GB_INPUT);
export const H200_141GB = buildGeometry(H200_141GB_INPUT);
export const A30_24GB = buildGeometry(A30_24GB_INPUT);

export const PRESETS: readonly { readonly key: string; readonly geometry: GpuGeometry }[] = [
  { key: "H100-80GB", geometry: H100_80GB },
  { key: "A100-40GB", geometry: A100_40GB },
  { key: "A100-80GB", geometry: A100_80GB },
  { key: "H200-141GB", geometry: H200_141GB },
  { key: "A30-24GB", geometry: A30_24GB },
];

export function profileNamed(geometry: GpuGeometry, name: string) {
  const p = geometry.profiles.find((x) => x.name === name);
  if (!p) throw new Error(`${geometry.model} has no profile ${name}`);
  return p;
}

let uuidCounter = 0;

/** A fresh, unique MIG device UUID. */
export function migUuid(): string {
  uuidCounter++;
  return `MIG-${uuidCounter.toString(16).padStart(8, "0")}-0000-4000-8000-000000000000`;
}

export function gpuUuid(index: number): string {
  return `GPU-${index.toString(16).padStart(8, "0")}-1111-4111-8111-111111111111`;
}

/** A MIG-enabled layout from `[name, start]` pairs, each GI with its full-size CI. */
export function layoutOf(
  geometry: GpuGeometry,
  instances: readonly (readonly [name: string, start: number])[],
  busy: readonly number[] = [],
): GpuLayout {
  const gis: GpuInstanceState[] = instances.map(([name, start], i) => {
    const p = profileNamed(geometry, name);
    return {
      giId: i + 1,
      profileId: p.id,
      placement: { start, size: p.memorySlices },
      computeInstances: [
        {
          ciId: 0,
          profileId: p.defaultComputeProfileId,
          uuid: migUuid(),
          processIds: busy.includes(i) ? [4400 + i] : [],
        },
      ],
    };
  });
  return { mode: { current: "enabled", pending: "enabled" }, instances: gis };
}

export function emptyLayout(mode: "enabled" | "disabled" = "enabled"): GpuLayout {
  return { mode: { current: mode, pending: mode }, instances: [] };
}

export function hostGpu(index: number, geometry: GpuGeometry, layout: GpuLayout = emptyLayout()): HostGpu {
  return {
    index,
    uuid: gpuUuid(index),
    model: geometry.model,
    pciDeviceId: geometry.pciDeviceId,
    pciSubsystemId: 0x16c110de,
    geometry,
    layout,
  };
}
