// Leases: a workload (by id, for a tenant) holding a MIG device or a whole GPU. The ledger also
// remembers GPU instances it is creating (so a crash between creating one and recording the lease
// is cleaned up at the next start) and instances it created whose destroy failed.

export interface InstancePlacement {
  readonly start: number;
  readonly size: number;
}

export interface Lease {
  readonly workloadId: string;
  readonly tenant: string;
  readonly gpuIndex: number;
  readonly gpuUuid: string;
  /** The MIG device (`MIG-…`); undefined for a whole-GPU lease. */
  readonly migUuid: string | undefined;
  readonly gpuInstanceId: number | undefined;
  readonly computeInstanceId: number | undefined;
  /** GPU-instance profile ID, for instances the agent created (destroyed on release). */
  readonly profileId: number | undefined;
  /** `3g.40gb`; the GPU's model name for a whole-GPU lease. */
  readonly profileName: string;
  readonly placement: InstancePlacement | undefined;
  readonly createdAtMs: number;
  /** The agent created the GPU instance for this lease and destroys it on release. */
  readonly instanceCreated: boolean;
}

/** A GPU instance being created for a workload: recorded before the create call. */
export interface PendingCreate {
  readonly workloadId: string;
  readonly tenant: string;
  readonly gpuIndex: number;
  readonly gpuUuid: string;
  readonly profileId: number;
  readonly profileName: string;
  readonly placement: InstancePlacement;
  readonly startedAtMs: number;
}

/** An instance the agent created that no lease holds and that could not be destroyed yet. */
export interface OrphanInstance {
  readonly gpuUuid: string;
  readonly gpuInstanceId: number;
  readonly profileId: number;
  readonly placementStart: number;
  readonly reason: string;
}

export interface LedgerState {
  readonly leases: ReadonlyMap<string, Lease>;
  readonly pending: ReadonlyMap<string, PendingCreate>;
  readonly orphans: readonly OrphanInstance[];
}

export const EMPTY_LEDGER: LedgerState = { leases: new Map(), pending: new Map(), orphans: [] };

/** The device a lease's workload uses: `CUDA_VISIBLE_DEVICES`. */
export function leaseDeviceUuid(lease: Lease): string {
  return lease.migUuid ?? lease.gpuUuid;
}
