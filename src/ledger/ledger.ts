// The lease ledger: the in-memory state only ever reflects what is on disk. A change is computed on
// a copy, written to the checkpoint (atomically, fsynced), and only then becomes the state, so a
// caller that replies after `commit` resolves never promises what a SIGKILL could take back.
import { writeCheckpoint } from "./checkpoint.js";
import type { Lease, LedgerState, OrphanInstance, PendingCreate } from "./types.js";

export interface LedgerChange {
  readonly putLeases?: readonly Lease[];
  readonly removeLeases?: readonly string[];
  readonly putPending?: readonly PendingCreate[];
  readonly removePending?: readonly string[];
  /** Replaces the orphan list when given. */
  readonly orphans?: readonly OrphanInstance[];
}

export function applyChange(state: LedgerState, change: LedgerChange): LedgerState {
  const leases = new Map(state.leases);
  for (const id of change.removeLeases ?? []) leases.delete(id);
  for (const l of change.putLeases ?? []) leases.set(l.workloadId, l);
  const pending = new Map(state.pending);
  for (const id of change.removePending ?? []) pending.delete(id);
  for (const p of change.putPending ?? []) pending.set(p.workloadId, p);
  return { leases, pending, orphans: change.orphans ?? state.orphans };
}

export class Ledger {
  readonly path: string;
  readonly #clock: () => number;
  #state: LedgerState;
  #queue: Promise<unknown> = Promise.resolve();
  #writes = 0;

  constructor(path: string, initial: LedgerState, clock: () => number = Date.now) {
    this.path = path;
    this.#state = initial;
    this.#clock = clock;
  }

  get state(): LedgerState {
    return this.#state;
  }

  /** Checkpoints written since start. */
  get writes(): number {
    return this.#writes;
  }

  /** Writes the changed ledger durably, then makes it the state. Commits run one at a time. */
  commit(change: LedgerChange): Promise<LedgerState> {
    const run = this.#queue.then(async () => {
      const next = applyChange(this.#state, change);
      await writeCheckpoint(this.path, next, this.#clock());
      this.#writes++;
      this.#state = next;
      return next;
    });
    this.#queue = run.catch(() => undefined);
    return run;
  }

  /** Waits for commits in progress (shutdown). */
  async flush(): Promise<void> {
    await this.#queue;
  }

  /** Rewrites the checkpoint with the current state. */
  checkpoint(): Promise<LedgerState> {
    return this.commit({});
  }

  /** MIG device UUID → workload ids holding it (the MIG manager refuses to destroy those). */
  holders(): Record<string, string[]> {
    const out: Record<string, string[]> = {};
    for (const l of this.#state.leases.values()) {
      if (l.migUuid) out[l.migUuid] = [...(out[l.migUuid] ?? []), l.workloadId];
    }
    return out;
  }
}
