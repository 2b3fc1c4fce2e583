// Checking the ledger against what NVML shows, at start and after every sweep. Pure: it says which
// leases lost their device and which instances the agent created but nobody holds; the daemon
// carries that out.
import type { GpuView } from "./allocate.js";
import { type Lease, type LedgerState, leaseDeviceUuid, type OrphanInstance, type PendingCreate } from "./types.js";

export interface ReconcilePlan {
  /** Leases whose MIG device or GPU is gone. */
  readonly lost: readonly Lease[];
  /** Creates interrupted by a crash: drop the record, destroy the instance when it exists. */
  readonly interrupted: readonly { readonly pending: PendingCreate; readonly destroy: OrphanInstance | undefined }[];
}

/** Every device UUID the host shows: GPUs and the MIG devices of their instances. */
export function presentDevices(gpus: readonly GpuView[]): Set<string> {
  const out = new Set<string>();
  for (const g of gpus) {
    out.add(g.uuid);
    for (const gi of g.instances) for (const ci of gi.computeInstances) out.add(ci.uuid);
  }
  return out;
}

/** Leases whose device is not on the host. */
export function vanishedLeases(state: LedgerState, gpus: readonly GpuView[]): Lease[] {
  const present = presentDevices(gpus);
  return [...state.leases.values()].filter((l) => !present.has(leaseDeviceUuid(l)));
}

export function reconcile(state: LedgerState, gpus: readonly GpuView[]): ReconcilePlan {
  const held = new Set([...state.leases.values()].map(leaseDeviceUuid));
  const interrupted = [...state.pending.values()].map((pending) => {
    const gpu = gpus.find((g) => g.uuid === pending.gpuUuid);
    const gi = gpu?.instances.find(
      (i) => i.profileId === pending.profileId && i.placement.start === pending.placement.start,
    );
    const heldByLease = gi?.computeInstances.some((ci) => held.has(ci.uuid)) ?? false;
    const destroy: OrphanInstance | undefined =
      gi && !heldByLease
        ? {
            gpuUuid: pending.gpuUuid,
            gpuInstanceId: gi.gpuInstanceId,
            profileId: gi.profileId,
            placementStart: gi.placement.start,
            reason: `created for workload ${pending.workloadId}, whose allocation was interrupted`,
          }
        : undefined;
    return { pending, destroy };
  });
  return { lost: vanishedLeases(state, gpus), interrupted };
}
