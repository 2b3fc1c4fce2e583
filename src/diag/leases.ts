// Leases as diagnostics sees them: who holds which device. The agent hands in its ledger's
// leases; the local command reads the agent's checkpoint file when there is one.
import { readCheckpoint } from "../ledger/checkpoint.js";
import type { LedgerState } from "../ledger/types.js";
import { FactsUnavailableError } from "./errors.js";

export interface LeaseRecord {
  readonly workloadId: string;
  /** The device the workload uses: `MIG-…` for a MIG device, `GPU-…` for a whole GPU. */
  readonly deviceUuid: string;
  readonly gpuIndex: number;
  readonly gpuUuid: string;
  readonly gpuInstanceId: number | undefined;
  readonly computeInstanceId: number | undefined;
}

/** Current leases; may throw FactsUnavailableError when there is no lease source after all. */
export type LeaseProvider = () => Promise<readonly LeaseRecord[]> | readonly LeaseRecord[];

export function leaseRecords(state: LedgerState): LeaseRecord[] {
  return [...state.leases.values()].map((l) => ({
    workloadId: l.workloadId,
    deviceUuid: l.migUuid ?? l.gpuUuid,
    gpuIndex: l.gpuIndex,
    gpuUuid: l.gpuUuid,
    gpuInstanceId: l.gpuInstanceId,
    computeInstanceId: l.computeInstanceId,
  }));
}

/**
 * Leases from the agent's checkpoint at `path` (read on every call). No file means no agent has
 * run here: the lease check is skipped, not passed. A corrupt file throws (the check fails).
 */
export function checkpointLeaseProvider(path: string): LeaseProvider {
  return async () => {
    const state = await readCheckpoint(path);
    if (state === undefined)
      throw new FactsUnavailableError(`no lease checkpoint at ${path} (is tessera-agent running here?)`);
    return leaseRecords(state);
  };
}
