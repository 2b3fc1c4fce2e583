// MIG on one GPU: mode, GPU-instance profiles (index → real profile ID), placements, capacity,
// and creating, listing and finding GPU instances. Every call after the profile lookup takes the
// profile *ID*, never the index constant (reference/nvml.md §3.3).
import { GPU_INSTANCE_PROFILE_COUNT } from "./constants.js";
import type { NvmlContext } from "./context.js";
import type { NvmlDeviceRef } from "./errors.js";
import { GpuInstance } from "./gpu-instance.js";
import { encodePlacement, readHandles, readPlacements } from "./placement.js";
import { readGpuInstanceProfile } from "./profile-info.js";
import { Rc, returnCodeName } from "./return-codes.js";
import type { GpuInstanceProfile, MigMode, MigModeChange, Placement } from "./types.js";

const MIG_DISABLE = 0;
const MIG_ENABLE = 1;

export class DeviceMig {
  readonly #ctx: NvmlContext;
  readonly #handle: bigint;
  readonly #ref: () => NvmlDeviceRef;

  /** @internal Reached through Device.mig. */
  constructor(ctx: NvmlContext, handle: bigint, ref: () => NvmlDeviceRef) {
    this.#ctx = ctx;
    this.#handle = handle;
    this.#ref = ref;
  }

  /** Current and pending MIG mode; absent on GPUs without MIG. */
  mode(): MigMode | undefined {
    const ctx = this.#ctx;
    const current = ctx.u32[0];
    const pending = ctx.u32[1];
    const rc = ctx.fn.nvmlDeviceGetMigMode(this.#handle, current, pending);
    if (!ctx.present(rc, "nvmlDeviceGetMigMode", this.#ref())) return undefined;
    return { current: current[0] === MIG_ENABLE, pending: pending[0] === MIG_ENABLE };
  }

  /**
   * Requests MIG on or off. Success of the request is not success of the activation: on Ampere
   * the mode stays pending until a GPU reset, and activationStatus says why (IN_USE, RESET_REQUIRED).
   */
  setMode(enabled: boolean): MigModeChange {
    const ctx = this.#ctx;
    const activation = new Int32Array(1);
    ctx.assertWritable("nvmlDeviceSetMigMode");
    const rc = ctx.fn.nvmlDeviceSetMigMode(this.#handle, enabled ? MIG_ENABLE : MIG_DISABLE, activation);
    if (rc !== Rc.SUCCESS) {
      throw ctx.error(rc, "nvmlDeviceSetMigMode", this.#ref(), `${enabled ? "enabling" : "disabling"} MIG`);
    }
    const mode = this.mode();
    if (mode === undefined) throw ctx.error(Rc.NOT_SUPPORTED, "nvmlDeviceGetMigMode", this.#ref());
    return { ...mode, activationStatus: returnCodeName(activation[0] as number) };
  }

  /** GPU-instance profile at index constant `index`; undefined where this GPU has none (or MIG is off). */
  gpuInstanceProfile(index: number): GpuInstanceProfile | undefined {
    const read = readGpuInstanceProfile(this.#ctx, this.#handle, index);
    if (read.rc === Rc.SUCCESS) return read.profile;
    if (read.rc === Rc.NOT_SUPPORTED || read.rc === Rc.INVALID_ARGUMENT) return undefined;
    throw this.#ctx.error(read.rc, read.operation, this.#ref(), `GPU-instance profile index ${index}`);
  }

  /** Every GPU-instance profile of this GPU, by index 0..NVML_GPU_INSTANCE_PROFILE_COUNT-1; [] with MIG off. */
  gpuInstanceProfiles(): GpuInstanceProfile[] {
    const out: GpuInstanceProfile[] = [];
    for (let index = 0; index < GPU_INSTANCE_PROFILE_COUNT; index++) {
      const profile = this.gpuInstanceProfile(index);
      if (profile !== undefined) out.push(profile);
    }
    return out;
  }

  /** Memory-slice placements where a GPU instance of `profileId` could be created (ignoring current occupancy). */
  possiblePlacements(profileId: number): Placement[] {
    const fn = this.#ctx.fn.nvmlDeviceGetGpuInstancePossiblePlacements_v2;
    const op = "nvmlDeviceGetGpuInstancePossiblePlacements_v2";
    return readPlacements(this.#ctx, fn, op, this.#handle, profileId, this.#ref(), `profile ${profileId}`);
  }

  /** How many more GPU instances of `profileId` fit now. */
  remainingCapacity(profileId: number): number {
    const ctx = this.#ctx;
    const u = ctx.u32[0];
    const rc = ctx.fn.nvmlDeviceGetGpuInstanceRemainingCapacity(this.#handle, profileId, u);
    if (rc !== Rc.SUCCESS) {
      throw ctx.error(rc, "nvmlDeviceGetGpuInstanceRemainingCapacity", this.#ref(), `profile ${profileId}`);
    }
    return u[0] as number;
  }

  /** Creates a GPU instance of `profileId` (an ID from gpuInstanceProfiles()), at `placement` when given. */
  createGpuInstance(profileId: number, placement?: Placement): GpuInstance {
    const ctx = this.#ctx;
    const out = new BigUint64Array(1);
    const op = placement === undefined ? "nvmlDeviceCreateGpuInstance" : "nvmlDeviceCreateGpuInstanceWithPlacement";
    ctx.assertWritable(op, this.#ref());
    const rc =
      placement === undefined
        ? ctx.fn.nvmlDeviceCreateGpuInstance(this.#handle, profileId, out)
        : ctx.fn.nvmlDeviceCreateGpuInstanceWithPlacement(this.#handle, profileId, encodePlacement(placement), out);
    if (rc !== Rc.SUCCESS) {
      const where = placement ? ` at ${placement.start}:${placement.size}` : "";
      throw ctx.error(rc, op, this.#ref(), `profile ${profileId}${where}`);
    }
    return new GpuInstance(ctx, out[0] as bigint, this.#ref());
  }

  /** GPU instances of `profileId`, or of every profile of this GPU. */
  gpuInstances(profileId?: number): GpuInstance[] {
    const ctx = this.#ctx;
    const profiles =
      profileId === undefined
        ? this.gpuInstanceProfiles().map((p) => ({ id: p.id, room: p.instanceCount }))
        : [{ id: profileId, room: 16 }];
    const fn = ctx.fn.nvmlDeviceGetGpuInstances;
    const ref = this.#ref();
    const seen = new Set<number>();
    const out: GpuInstance[] = [];
    for (const { id, room } of profiles) {
      if (seen.has(id)) continue;
      seen.add(id);
      for (const h of readHandles(ctx, fn, "nvmlDeviceGetGpuInstances", this.#handle, id, ref, Math.max(room, 8))) {
        out.push(new GpuInstance(ctx, h, ref));
      }
    }
    return out;
  }

  /** The GPU instance with `id`, or undefined when there is none (NOT_FOUND). */
  gpuInstanceById(id: number): GpuInstance | undefined {
    const ctx = this.#ctx;
    const out = new BigUint64Array(1);
    const rc = ctx.fn.nvmlDeviceGetGpuInstanceById(this.#handle, id, out);
    if (rc === Rc.NOT_FOUND) return undefined;
    if (rc !== Rc.SUCCESS) throw ctx.error(rc, "nvmlDeviceGetGpuInstanceById", this.#ref(), `GPU instance ${id}`);
    return new GpuInstance(ctx, out[0] as bigint, this.#ref());
  }
}
