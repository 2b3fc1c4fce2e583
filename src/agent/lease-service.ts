// Carries out Allocate and Release: decisions come from src/ledger (pure), NVML changes go to the
// control thread, and the checkpoint is written before any reply, so a SIGKILL after a reply never
// loses a lease. For a new GPU instance the intent is recorded before the create call: a crash
// between the two leaves a record that the next start uses to find and destroy the instance.
import { TesseraError } from "../errors.js";
import { type AllocateRequest, decideAllocate, type GpuView, leaseFromCreate } from "../ledger/allocate.js";
import type { Ledger } from "../ledger/ledger.js";
import { reconcile, vanishedLeases } from "../ledger/reconcile.js";
import { type Lease, leaseDeviceUuid, type OrphanInstance, type PendingCreate } from "../ledger/types.js";
import type { AgentEventInit } from "../telemetry/event-log.js";
import type { Logger } from "./logger.js";
import type { NodeSnapshot } from "./node-state.js";
import type { CreatedInstance, DestroyOutcome, InstanceListing } from "./nvml-worker.js";
import { WorkerTimeoutError } from "./worker-protocol.js";

export class ReadOnlyModeError extends TesseraError {
  constructor(what: string) {
    super(
      "TESSERA_READ_ONLY",
      `${what} refused: the agent runs in read-only mode (nvml.readOnly), so no NVML change can be made`,
    );
  }
}

/** The control thread, as the lease service uses it. */
export interface ControlPort {
  request<T>(op: string, args: unknown, timeoutMs: number): Promise<T>;
}

export interface LeaseServiceOptions {
  readonly ledger: Ledger;
  readonly control: ControlPort;
  readonly snapshot: () => NodeSnapshot | undefined;
  readonly dynamic: boolean;
  readonly readOnly: boolean;
  readonly callTimeoutMs: number;
  readonly emit: (event: AgentEventInit) => void;
  /** The sampler re-reads MIG layouts at its next sweep. */
  readonly layoutsChanged: () => void;
  readonly log: Logger;
  readonly clock?: () => number;
}

/** GPUs of a snapshot as the ledger's decisions see them. */
export function gpuViews(snapshot: NodeSnapshot): GpuView[] {
  return snapshot.sweep.gpus.map((g) => {
    const verdict = snapshot.health.get(g.identity.index);
    return {
      index: g.identity.index,
      uuid: g.identity.uuid,
      model: g.identity.name,
      usable: !g.lost && verdict?.state !== "unhealthy",
      healthReasons: verdict?.reasons ?? [],
      migCapable: g.identity.migCapable,
      migEnabled: g.mig?.enabled ?? false,
      memorySliceCount: g.mig?.memorySliceCount ?? 0,
      profiles: (g.mig?.profiles ?? []).map((p) => ({
        id: p.id,
        name: p.name,
        sliceCount: p.sliceCount,
        memorySlices: p.memorySlices,
        maxInstances: p.maxInstances,
        placementStarts: p.placementStarts,
      })),
      instances: (g.lost ? [] : (g.mig?.instances ?? [])).map((gi) => ({
        gpuInstanceId: gi.gpuInstanceId,
        profileId: gi.profileId,
        profileName: gi.profileName,
        placement: gi.placement,
        computeInstances: gi.computeInstances.map((ci) => ({ computeInstanceId: ci.computeInstanceId, uuid: ci.uuid })),
      })),
    };
  });
}

export interface AllocateOutcome {
  readonly lease: Lease;
  readonly created: boolean;
}

export interface ReleaseOutcome {
  readonly released: boolean;
  readonly instanceDestroyed: boolean;
}

export class LeaseService {
  readonly #o: LeaseServiceOptions;
  readonly #clock: () => number;
  #queue: Promise<unknown> = Promise.resolve();
  #busy = 0;
  /** Leases seen without their device in the previous snapshot (confirmed on the next). */
  #suspect = new Set<string>();

  constructor(options: LeaseServiceOptions) {
    this.#o = options;
    this.#clock = options.clock ?? Date.now;
  }

  /** Lease operations in progress or queued (shutdown waits for them). */
  get busy(): number {
    return this.#busy;
  }

  /** Waits until queued operations are done. */
  async idle(): Promise<void> {
    await this.#queue.catch(() => undefined);
  }

  #serial<T>(fn: () => Promise<T>): Promise<T> {
    this.#busy++;
    const run = this.#queue.then(fn, fn);
    this.#queue = run.then(
      () => undefined,
      () => undefined,
    );
    return run.finally(() => {
      this.#busy--;
    });
  }

  #views(): GpuView[] {
    const s = this.#o.snapshot();
    if (!s) throw new TesseraError("TESSERA_NOT_READY", "the agent has no snapshot of the host yet");
    return gpuViews(s);
  }

  allocate(req: AllocateRequest): Promise<AllocateOutcome> {
    return this.#serial(async () => {
      const ledger = this.#o.ledger;
      const nowMs = this.#clock();
      let gpus = this.#views();
      let decision = decideAllocate(ledger.state, req, { gpus, dynamic: this.#o.dynamic, nowMs });
      if (decision.kind === "existing") return { lease: decision.lease, created: false };
      if (decision.kind === "grant") {
        await ledger.commit({ putLeases: [decision.lease] });
        this.#leaseEvent(decision.lease, "allocated");
        return { lease: decision.lease, created: true };
      }
      if (this.#o.readOnly) throw new ReadOnlyModeError("creating a GPU instance for Allocate");
      // The snapshot may lag: decide the placement again on what NVML shows right now.
      const listing = await this.#o.control.request<InstanceListing>(
        "list-instances",
        { gpuUuid: decision.pending.gpuUuid },
        this.#o.callTimeoutMs,
      );
      gpus = withListing(gpus, listing);
      decision = decideAllocate(ledger.state, req, { gpus, dynamic: this.#o.dynamic, nowMs });
      if (decision.kind !== "create") throw new Error("allocation decision changed kind on a fresh view");
      const pending = decision.pending;
      await ledger.commit({ putPending: [pending] });
      let created: CreatedInstance;
      try {
        created = await this.#o.control.request<CreatedInstance>(
          "create-instance",
          { gpuUuid: pending.gpuUuid, profileId: pending.profileId, placement: pending.placement },
          this.#o.callTimeoutMs,
        );
      } catch (err) {
        if (err instanceof WorkerTimeoutError) {
          // The create may still happen: keep the record and clean up once NVML answers.
          void this.#settleLate(pending);
        } else {
          await ledger.commit({ removePending: [pending.workloadId] });
        }
        throw err;
      }
      const lease = leaseFromCreate(pending, created, this.#clock());
      await ledger.commit({ putLeases: [lease], removePending: [pending.workloadId] });
      // The sampler's next sweep reports the new instance as a MIG event; the lease event names the workload.
      this.#o.layoutsChanged();
      this.#leaseEvent(lease, "allocated");
      return { lease, created: true };
    });
  }

  release(workloadId: string): Promise<ReleaseOutcome> {
    return this.#serial(async () => {
      const ledger = this.#o.ledger;
      const lease = ledger.state.leases.get(workloadId);
      if (!lease) return { released: false, instanceDestroyed: false };
      let instanceDestroyed = false;
      const orphans: OrphanInstance[] = [...ledger.state.orphans];
      if (
        lease.instanceCreated &&
        lease.gpuInstanceId !== undefined &&
        lease.profileId !== undefined &&
        lease.placement
      ) {
        const target = {
          gpuUuid: lease.gpuUuid,
          gpuInstanceId: lease.gpuInstanceId,
          profileId: lease.profileId,
          placementStart: lease.placement.start,
        };
        if (this.#o.readOnly) {
          orphans.push({ ...target, reason: `released by ${workloadId} while the agent was read-only` });
        } else {
          // IN_USE (processes still running) refuses the release: FAILED_PRECONDITION, the lease stays.
          const outcome = await this.#o.control.request<DestroyOutcome>(
            "destroy-instance",
            target,
            this.#o.callTimeoutMs,
          );
          instanceDestroyed = outcome.destroyed;
          if (!outcome.destroyed)
            this.#o.log.info({ workloadId, reason: outcome.reason }, "instance of released lease already gone");
          this.#o.layoutsChanged();
        }
      }
      await ledger.commit({ removeLeases: [workloadId], orphans });
      this.#leaseEvent(lease, "released");
      return { released: true, instanceDestroyed };
    });
  }

  /** At start: drop leases whose device vanished, finish interrupted creates, retry orphans. */
  reconcileAtStart(snapshot: NodeSnapshot): Promise<void> {
    return this.#serial(async () => {
      const ledger = this.#o.ledger;
      const plan = reconcile(ledger.state, gpuViews(snapshot));
      for (const lease of plan.lost) this.#leaseEvent(lease, "lost");
      const orphans: OrphanInstance[] = [];
      for (const { pending, destroy } of plan.interrupted) {
        this.#o.log.warn(
          { workloadId: pending.workloadId, gpu: pending.gpuUuid },
          "finishing an allocation a crash interrupted",
        );
        if (destroy) orphans.push(destroy);
      }
      orphans.push(...ledger.state.orphans);
      const left = this.#o.readOnly ? orphans : await this.#destroyAll(orphans);
      await ledger.commit({
        removeLeases: plan.lost.map((l) => l.workloadId),
        removePending: plan.interrupted.map((i) => i.pending.workloadId),
        orphans: left,
      });
    });
  }

  /** After each sweep: a lease whose device is gone in two snapshots in a row is lost. */
  checkVanished(snapshot: NodeSnapshot): void {
    if (snapshot.stale || this.#o.ledger.state.leases.size === 0) {
      this.#suspect.clear();
      return;
    }
    const gone = vanishedLeases(this.#o.ledger.state, gpuViews(snapshot)).filter(
      (l) => l.createdAtMs < snapshot.sweep.startedAtMs,
    );
    const confirmed = gone.filter((l) => this.#suspect.has(l.workloadId));
    this.#suspect = new Set(gone.map((l) => l.workloadId));
    if (confirmed.length === 0) return;
    void this.#serial(async () => {
      const current = confirmed.filter((l) => this.#o.ledger.state.leases.get(l.workloadId) === l);
      if (current.length === 0) return;
      await this.#o.ledger.commit({ removeLeases: current.map((l) => l.workloadId) });
      for (const l of current) this.#leaseEvent(l, "lost");
    }).catch((err: unknown) => this.#o.log.error({ err }, "cannot record lost leases"));
  }

  async #destroyAll(orphans: readonly OrphanInstance[]): Promise<OrphanInstance[]> {
    const left: OrphanInstance[] = [];
    for (const o of orphans) {
      try {
        const outcome = await this.#o.control.request<DestroyOutcome>("destroy-instance", o, this.#o.callTimeoutMs);
        this.#o.log.info(
          { gpu: o.gpuUuid, gpuInstance: o.gpuInstanceId, ...outcome },
          "cleaned up an instance nobody holds",
        );
        if (outcome.destroyed) {
          this.#o.emit({
            kind: "mig",
            atMs: this.#clock(),
            gpuIndex: undefined,
            gpuUuid: o.gpuUuid,
            message: `${o.gpuUuid}: destroyed GPU instance ${o.gpuInstanceId} that no lease holds (${o.reason})`,
            detail: { type: "mig", change: `destroyed orphan GPU instance ${o.gpuInstanceId}` },
          });
        }
      } catch (err) {
        this.#o.log.warn(
          { gpu: o.gpuUuid, gpuInstance: o.gpuInstanceId, err },
          "cannot clean up an orphan instance yet",
        );
        left.push(o);
      }
    }
    this.#o.layoutsChanged();
    return left;
  }

  async #settleLate(pending: PendingCreate): Promise<void> {
    try {
      // Queued behind the hung create: answers once NVML does.
      const listing = await this.#o.control.request<InstanceListing>(
        "list-instances",
        { gpuUuid: pending.gpuUuid },
        10 * 60_000,
      );
      await this.#serial(async () => {
        const gi = listing.instances.find(
          (i) => i.profileId === pending.profileId && i.placement.start === pending.placement.start,
        );
        const held = new Set([...this.#o.ledger.state.leases.values()].map(leaseDeviceUuid));
        const orphans = [...this.#o.ledger.state.orphans];
        if (gi && !gi.migUuids.some((u) => held.has(u)))
          orphans.push({
            gpuUuid: pending.gpuUuid,
            gpuInstanceId: gi.gpuInstanceId,
            profileId: gi.profileId,
            placementStart: gi.placement.start,
            reason: `created for workload ${pending.workloadId} after its Allocate timed out`,
          });
        const left = await this.#destroyAll(orphans);
        await this.#o.ledger.commit({ removePending: [pending.workloadId], orphans: left });
      });
    } catch (err) {
      this.#o.log.error(
        { err, workloadId: pending.workloadId },
        "cannot settle a timed-out allocation; the next start will",
      );
    }
  }

  #leaseEvent(lease: Lease, change: "allocated" | "released" | "lost"): void {
    const device = leaseDeviceUuid(lease);
    this.#o.emit({
      kind: "lease",
      atMs: this.#clock(),
      gpuIndex: lease.gpuIndex,
      gpuUuid: lease.gpuUuid,
      message:
        change === "lost"
          ? `lease of workload ${lease.workloadId} (tenant ${lease.tenant}) lost: ${device} is gone`
          : `workload ${lease.workloadId} (tenant ${lease.tenant}) ${change} ${device}`,
      detail: { type: "lease", workloadId: lease.workloadId, change, deviceUuid: device },
    });
  }
}

/** The GPU's instances replaced by what NVML listed just now. */
function withListing(gpus: readonly GpuView[], listing: InstanceListing): GpuView[] {
  return gpus.map((g) => {
    if (g.uuid !== listing.gpuUuid) return g;
    const names = new Map(g.profiles.map((p) => [p.id, p.name]));
    return {
      ...g,
      instances: listing.instances.map((i) => ({
        gpuInstanceId: i.gpuInstanceId,
        profileId: i.profileId,
        profileName: names.get(i.profileId) ?? `profile ${i.profileId}`,
        placement: i.placement,
        computeInstances: i.migUuids.map((uuid, n) => ({ computeInstanceId: n, uuid })),
      })),
    };
  });
}
