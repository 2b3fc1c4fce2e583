// Reads what the MIG manager plans from: each GPU's geometry (learned from NVML, never from a
// table) and its current layout (GPU instances, compute instances, MIG device UUIDs, processes).
import type { Device, GpuInstance, Nvml } from "../nvml/index.js";
import { buildGeometry } from "./geometry.js";
import type {
  ComputeInstanceState,
  GeometryInput,
  GpuInstanceState,
  GpuLayout,
  HostGpu,
  NvmlComputeInstanceProfile,
  NvmlGpuInstanceProfile,
} from "./types.js";

/**
 * NVML reports GPU-instance profiles only while MIG is enabled, and compute-instance profiles only
 * through an existing GPU instance. What was learned is kept per GPU model so a GPU with MIG
 * disabled, or a profile with no instance right now, can still be planned.
 */
export class GeometryCache {
  readonly #byModel = new Map<string, GeometryInput>();
  readonly #ciByProfile = new Map<string, NvmlComputeInstanceProfile[]>();

  static key(pciDeviceId: number, totalMemoryMiB: number): string {
    return `${pciDeviceId.toString(16)}/${totalMemoryMiB}`;
  }

  get(key: string): GeometryInput | undefined {
    const input = this.#byModel.get(key);
    if (!input) return undefined;
    return {
      ...input,
      profiles: input.profiles.map((p) => ({
        ...p,
        computeProfiles: this.#ciByProfile.get(`${key}/${p.id}`) ?? p.computeProfiles,
      })),
    };
  }

  learnProfiles(key: string, input: GeometryInput): void {
    this.#byModel.set(key, input);
  }

  learnComputeProfiles(key: string, gpuInstanceProfileId: number, profiles: NvmlComputeInstanceProfile[]): void {
    this.#ciByProfile.set(`${key}/${gpuInstanceProfileId}`, profiles);
  }

  toJSON(): { models: [string, GeometryInput][]; computeProfiles: [string, NvmlComputeInstanceProfile[]][] } {
    return { models: [...this.#byModel], computeProfiles: [...this.#ciByProfile] };
  }

  static fromJSON(data: ReturnType<GeometryCache["toJSON"]>): GeometryCache {
    const cache = new GeometryCache();
    for (const [k, v] of data.models) cache.#byModel.set(k, v);
    for (const [k, v] of data.computeProfiles) cache.#ciByProfile.set(k, v);
    return cache;
  }
}

/**
 * Compute-instance profiles of a `g`-slice GPU instance by go-nvlib's validity rule (C ≤ G, and no
 * C < G with 2C > G+1), used until NVML has shown the real ones. Apply resolves real IDs by slice
 * count on the live instance, so a driver whose IDs differ (1g.20gb's REV1 CI) is still served.
 */
export function derivedComputeProfiles(g: number, sm: number): NvmlComputeInstanceProfile[] {
  const indexOfSlices: Record<number, number> = { 1: 0, 2: 1, 3: 2, 4: 3, 7: 4, 8: 5, 6: 6 };
  const out: NvmlComputeInstanceProfile[] = [];
  for (const c of [1, 2, 3, 4, 6, 7, 8]) {
    if (c > g || (c < g && 2 * c > g + 1)) continue;
    const index = indexOfSlices[c] ?? 0;
    out.push({
      index,
      id: index,
      sliceCount: c,
      multiprocessorCount: Math.floor((sm * c) / g),
      instanceCount: Math.floor(g / c),
    });
  }
  return out;
}

function computeProfilesOf(gi: GpuInstance): NvmlComputeInstanceProfile[] {
  return gi.computeInstanceProfiles().map((p) => ({
    index: p.index,
    id: p.id,
    sliceCount: p.sliceCount,
    multiprocessorCount: p.multiprocessorCount,
    instanceCount: p.instanceCount,
  }));
}

function learnFromDevice(
  device: Device,
  key: string,
  model: string,
  pciDeviceId: number,
  totalMemoryMiB: number,
  cache: GeometryCache,
): void {
  const profiles: NvmlGpuInstanceProfile[] = device.mig.gpuInstanceProfiles().map((p) => ({
    index: p.index,
    id: p.id,
    sliceCount: p.sliceCount,
    memorySizeMiB: p.memorySizeMiB,
    multiprocessorCount: p.multiprocessorCount,
    engines: {
      copy: p.copyEngineCount,
      decoder: p.decoderCount,
      encoder: p.encoderCount,
      jpeg: p.jpegCount,
      ofa: p.ofaCount,
    },
    instanceCount: p.instanceCount,
    placements: device.mig.possiblePlacements(p.id),
    computeProfiles: derivedComputeProfiles(p.sliceCount, p.multiprocessorCount),
  }));
  if (profiles.length > 0 && !cache.get(key))
    cache.learnProfiles(key, { model, pciDeviceId, totalMemoryMiB, profiles });
  for (const gi of device.mig.gpuInstances())
    cache.learnComputeProfiles(key, gi.info().profileId, computeProfilesOf(gi));
}

/** The current layout of a MIG-enabled GPU, with MIG device UUIDs and the processes on each. */
export function readLayout(device: Device): GpuLayout["instances"] {
  const migByIds = new Map<string, { uuid: string; pids: number[] }>();
  for (const m of device.migDevices()) {
    migByIds.set(`${m.gpuInstanceId()}/${m.computeInstanceId()}`, {
      uuid: m.uuid(),
      pids: (m.computeProcesses() ?? []).map((p) => p.pid),
    });
  }
  const instances: GpuInstanceState[] = [];
  for (const gi of device.mig.gpuInstances()) {
    const info = gi.info();
    const cis: ComputeInstanceState[] = gi.computeInstances().map((ci) => {
      const ciInfo = ci.info();
      const mig = migByIds.get(`${info.id}/${ciInfo.id}`);
      return { ciId: ciInfo.id, profileId: ciInfo.profileId, uuid: mig?.uuid ?? "", processIds: mig?.pids ?? [] };
    });
    instances.push({
      giId: info.id,
      profileId: info.profileId,
      placement: { start: info.placement.start, size: info.placement.size },
      computeInstances: cis.sort((a, b) => a.ciId - b.ciId),
    });
  }
  return instances.sort((a, b) => a.placement.start - b.placement.start || a.giId - b.giId);
}

export interface ManagedGpu extends HostGpu {
  readonly device: Device;
  /** MIG-capable (NVML answers the MIG mode query). */
  readonly migCapable: boolean;
  /** Geometry key for the cache (model + memory). */
  readonly geometryKey: string;
}

/** Every GPU NVML can open, with geometry (from NVML or the cache) and layout. */
export function readHostGpus(nvml: Nvml, cache: GeometryCache): ManagedGpu[] {
  const out: ManagedGpu[] = [];
  for (const slot of nvml.deviceSlots()) {
    if (!("device" in slot)) continue;
    const device = slot.device;
    const pci = device.pciInfo();
    const model = device.name();
    const totalMemoryMiB = Math.round((device.memory()?.totalBytes ?? 0) / 1048576);
    const key = GeometryCache.key(pci.pciDeviceId, totalMemoryMiB);
    const mode = device.mig.mode();
    const enabled = mode?.current === true;
    if (enabled) learnFromDevice(device, key, model, pci.pciDeviceId, totalMemoryMiB, cache);
    const input = mode ? cache.get(key) : undefined;
    out.push({
      index: slot.index,
      uuid: device.uuid(),
      model,
      pciDeviceId: pci.pciDeviceId,
      pciSubsystemId: pci.pciSubSystemId,
      geometry: input ? buildGeometry(input) : null,
      layout: {
        mode: { current: enabled ? "enabled" : "disabled", pending: mode?.pending ? "enabled" : "disabled" },
        instances: enabled ? readLayout(device) : [],
      },
      device,
      migCapable: mode !== undefined,
      geometryKey: key,
    });
  }
  return out;
}
