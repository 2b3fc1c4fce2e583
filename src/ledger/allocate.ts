// Allocation and release decisions, pure over the ledger and a view of the host (from the latest
// snapshot, or from NVML just before a create). Idempotent by workload id: asking again for what a
// workload holds returns its lease unchanged.
import {
  AllocationInProgressError,
  DeviceBusyError,
  DeviceNotFoundError,
  DeviceUnhealthyError,
  InvalidFieldError,
  MigModeError,
  NoRoomError,
  WorkloadHoldsOtherError,
} from "./errors.js";
import { type InstancePlacement, type Lease, type LedgerState, leaseDeviceUuid, type PendingCreate } from "./types.js";

export interface ProfileView {
  readonly id: number;
  readonly name: string;
  readonly sliceCount: number;
  readonly memorySlices: number;
  readonly maxInstances: number;
  readonly placementStarts: readonly number[];
}

export interface InstanceView {
  readonly gpuInstanceId: number;
  readonly profileId: number;
  readonly profileName: string;
  readonly placement: InstancePlacement;
  readonly computeInstances: readonly { readonly computeInstanceId: number; readonly uuid: string }[];
}

export interface GpuView {
  readonly index: number;
  readonly uuid: string;
  readonly model: string;
  /** Not unhealthy (degraded GPUs still take work; the scheduler may prefer others). */
  readonly usable: boolean;
  readonly healthReasons: readonly string[];
  readonly migCapable: boolean;
  readonly migEnabled: boolean;
  readonly memorySliceCount: number;
  readonly profiles: readonly ProfileView[];
  readonly instances: readonly InstanceView[];
}

export type AllocateTarget =
  | { readonly kind: "device"; readonly uuid: string }
  | {
      readonly kind: "new-instance";
      readonly gpuUuid: string;
      readonly profile: string;
      readonly placementStart: number | undefined;
    };

export interface AllocateRequest {
  readonly workloadId: string;
  readonly tenant: string;
  readonly target: AllocateTarget;
}

export type AllocateDecision =
  | { readonly kind: "existing"; readonly lease: Lease }
  | { readonly kind: "grant"; readonly lease: Lease }
  | { readonly kind: "create"; readonly pending: PendingCreate };

export interface AllocateContext {
  readonly gpus: readonly GpuView[];
  /** Dynamic nodes carve new GPU instances for allocations. */
  readonly dynamic: boolean;
  readonly nowMs: number;
}

function describeTarget(t: AllocateTarget): string {
  return t.kind === "device"
    ? t.uuid
    : `a new ${t.profile} instance on ${t.gpuUuid}${t.placementStart === undefined ? "" : ` at ${t.placementStart}`}`;
}

/** Whether a lease is what `target` asks for (so asking again is a retry, not a second lease). */
export function leaseMatches(lease: Lease, target: AllocateTarget): boolean {
  if (target.kind === "device") return leaseDeviceUuid(lease) === target.uuid;
  return (
    lease.instanceCreated &&
    lease.gpuUuid === target.gpuUuid &&
    lease.profileName.toLowerCase() === target.profile.toLowerCase() &&
    (target.placementStart === undefined || lease.placement?.start === target.placementStart)
  );
}

function holderOf(state: LedgerState, deviceUuid: string): Lease | undefined {
  for (const l of state.leases.values()) if (leaseDeviceUuid(l) === deviceUuid) return l;
  return undefined;
}

function assertUsable(gpu: GpuView): void {
  if (!gpu.usable)
    throw new DeviceUnhealthyError(
      `GPU ${gpu.index} (${gpu.uuid}) is unhealthy: ${gpu.healthReasons.join("; ") || "see its health"}`,
    );
}

export function decideAllocate(state: LedgerState, req: AllocateRequest, ctx: AllocateContext): AllocateDecision {
  const held = state.leases.get(req.workloadId);
  if (held) {
    if (leaseMatches(held, req.target)) return { kind: "existing", lease: held };
    throw new WorkloadHoldsOtherError(
      `workload ${req.workloadId} already holds ${leaseDeviceUuid(held)}; release it before asking for ${describeTarget(req.target)}`,
    );
  }
  if (state.pending.has(req.workloadId))
    throw new AllocationInProgressError(
      `workload ${req.workloadId}: an allocation is still being carried out; retry with the same workload id`,
    );
  return req.target.kind === "device"
    ? grantExisting(state, req, req.target.uuid, ctx)
    : planCreate(state, req, req.target, ctx);
}

function grantExisting(state: LedgerState, req: AllocateRequest, uuid: string, ctx: AllocateContext): AllocateDecision {
  const holder = holderOf(state, uuid);
  if (holder) throw new DeviceBusyError(`${uuid} is leased by workload ${holder.workloadId} (tenant ${holder.tenant})`);
  for (const gpu of ctx.gpus) {
    if (gpu.uuid === uuid) {
      assertUsable(gpu);
      if (gpu.migEnabled)
        throw new MigModeError(
          `GPU ${gpu.index} (${uuid}) has MIG enabled: lease one of its MIG devices, not the whole GPU`,
        );
      const onIt = [...state.leases.values()].find((l) => l.gpuUuid === uuid);
      if (onIt) throw new DeviceBusyError(`GPU ${gpu.index} (${uuid}) is in use by workload ${onIt.workloadId}`);
      return {
        kind: "grant",
        lease: {
          workloadId: req.workloadId,
          tenant: req.tenant,
          gpuIndex: gpu.index,
          gpuUuid: gpu.uuid,
          migUuid: undefined,
          gpuInstanceId: undefined,
          computeInstanceId: undefined,
          profileId: undefined,
          profileName: gpu.model,
          placement: undefined,
          createdAtMs: ctx.nowMs,
          instanceCreated: false,
        },
      };
    }
    for (const gi of gpu.instances) {
      const ci = gi.computeInstances.find((c) => c.uuid === uuid);
      if (!ci) continue;
      assertUsable(gpu);
      return {
        kind: "grant",
        lease: {
          workloadId: req.workloadId,
          tenant: req.tenant,
          gpuIndex: gpu.index,
          gpuUuid: gpu.uuid,
          migUuid: uuid,
          gpuInstanceId: gi.gpuInstanceId,
          computeInstanceId: ci.computeInstanceId,
          profileId: undefined,
          profileName: gi.profileName,
          placement: gi.placement,
          createdAtMs: ctx.nowMs,
          instanceCreated: false,
        },
      };
    }
  }
  throw new DeviceNotFoundError(`no GPU or MIG device ${uuid} on this host`);
}

function planCreate(
  state: LedgerState,
  req: AllocateRequest,
  target: Extract<AllocateTarget, { kind: "new-instance" }>,
  ctx: AllocateContext,
): AllocateDecision {
  if (!ctx.dynamic)
    throw new MigModeError(
      "this node is static: it leases existing MIG devices and whole GPUs only (set mig.dynamic: true to let Allocate create instances)",
    );
  const gpu = ctx.gpus.find((g) => g.uuid === target.gpuUuid);
  if (!gpu) throw new DeviceNotFoundError(`no GPU ${target.gpuUuid} on this host`);
  assertUsable(gpu);
  if (!gpu.migEnabled)
    throw new MigModeError(`GPU ${gpu.index} (${gpu.uuid}) has MIG disabled: enable it with ApplyMigLayout first`);
  const profile = gpu.profiles.find((p) => p.name.toLowerCase() === target.profile.toLowerCase());
  if (!profile)
    throw new InvalidFieldError(
      "new_instance.profile",
      `${target.profile} is not a MIG profile of GPU ${gpu.index} (${gpu.model}); profiles: ${gpu.profiles.map((p) => p.name).join(", ") || "none known yet"}`,
    );
  // In-flight creates hold their slices too.
  const pending = [...state.pending.values()].filter((p) => p.gpuUuid === gpu.uuid);
  const occupied = [...gpu.instances.map((i) => i.placement), ...pending.map((p) => p.placement)];
  const count =
    gpu.instances.filter((i) => i.profileId === profile.id).length +
    pending.filter((p) => p.profileId === profile.id).length;
  if (count >= profile.maxInstances)
    throw new NoRoomError(
      `GPU ${gpu.index} (${gpu.uuid}) already has ${count} ${profile.name} instances, the most it can hold`,
    );
  const start = choosePlacement(gpu, profile, occupied, target.placementStart);
  return {
    kind: "create",
    pending: {
      workloadId: req.workloadId,
      tenant: req.tenant,
      gpuIndex: gpu.index,
      gpuUuid: gpu.uuid,
      profileId: profile.id,
      profileName: profile.name,
      placement: { start, size: profile.memorySlices },
      startedAtMs: ctx.nowMs,
    },
  };
}

function mask(start: number, size: number): number {
  return ((1 << size) - 1) << start;
}

/** Most non-overlapping placements of `p` inside `free` (placements share one size: greedy is optimal). */
function placeable(p: ProfileView, free: number): number {
  let m = free;
  let n = 0;
  for (const s of p.placementStarts) {
    const pm = mask(s, p.memorySlices);
    if ((pm & m) === pm) {
      m &= ~pm;
      n++;
    }
  }
  return n;
}

/**
 * The requested start (if legal and free), else the free legal start that leaves the largest
 * profiles placeable: compared first by the largest profile still placeable, then by how many of
 * each profile (largest first) still fit.
 */
export function choosePlacement(
  gpu: GpuView,
  profile: ProfileView,
  occupied: readonly InstancePlacement[],
  requested: number | undefined,
): number {
  let used = 0;
  for (const o of occupied) used |= mask(o.start, o.size);
  const all = (1 << Math.max(gpu.memorySliceCount, 1)) - 1;
  const free = all & ~used;
  const fits = (s: number) => (mask(s, profile.memorySlices) & free) === mask(s, profile.memorySlices);
  if (requested !== undefined) {
    if (!profile.placementStarts.includes(requested))
      throw new InvalidFieldError(
        "new_instance.placement_start",
        `${requested} is not a legal start for ${profile.name} on GPU ${gpu.index}; legal starts: ${profile.placementStarts.join(", ")}`,
      );
    if (!fits(requested))
      throw new NoRoomError(
        `GPU ${gpu.index} (${gpu.uuid}): memory slices ${requested}–${requested + profile.memorySlices - 1} for ${profile.name} are taken`,
      );
    return requested;
  }
  const candidates = profile.placementStarts.filter(fits);
  if (candidates.length === 0)
    throw new NoRoomError(`GPU ${gpu.index} (${gpu.uuid}) has no free placement for ${profile.name}`);
  const bySize = [...gpu.profiles].sort((a, b) => b.sliceCount - a.sliceCount || b.memorySlices - a.memorySlices);
  const score = (rest: number): number[] => {
    const counts = bySize.map((p) => placeable(p, rest));
    const largest = counts.findIndex((c) => c > 0);
    return [largest < 0 ? -1 : bySize.length - largest, ...counts];
  };
  let best = candidates[0] as number;
  let bestScore = score(free & ~mask(best, profile.memorySlices));
  for (const s of candidates.slice(1)) {
    const sc = score(free & ~mask(s, profile.memorySlices));
    const better = sc.findIndex((v, i) => v !== bestScore[i]);
    if (better >= 0 && (sc[better] as number) > (bestScore[better] as number)) {
      best = s;
      bestScore = sc;
    }
  }
  return best;
}

/** The lease for a created instance. */
export function leaseFromCreate(
  pending: PendingCreate,
  created: { gpuInstanceId: number; computeInstanceId: number; migUuid: string; placement: InstancePlacement },
  nowMs: number,
): Lease {
  return {
    workloadId: pending.workloadId,
    tenant: pending.tenant,
    gpuIndex: pending.gpuIndex,
    gpuUuid: pending.gpuUuid,
    migUuid: created.migUuid,
    gpuInstanceId: created.gpuInstanceId,
    computeInstanceId: created.computeInstanceId,
    profileId: pending.profileId,
    profileName: pending.profileName,
    placement: created.placement,
    createdAtMs: nowMs,
    instanceCreated: true,
  };
}
