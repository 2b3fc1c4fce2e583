// Turning a placement into leases: idempotent by workload id, reserved in
// the view before the agent is asked (so concurrent requests never choose
// the same slice), serialized per GPU towards the agents, and final only
// when the agent confirms. The agent is a port (`AgentPort`): the gRPC
// client in the service, fakes in tests, an in-process fleet in benches.

import { InputError, TesseraError } from "../errors.js";
import type { Placement } from "../mig/types.js";
import {
  type ClusterView,
  cancelSlice,
  confirmSlice,
  type LeaseRecord,
  leasesOfGroup,
  markSliceInDoubt,
  removeLease,
  reserveSlices,
  SLICE_SEPARATOR,
  type SliceReservation,
  tenantUsage,
} from "./cluster.js";
import type { DemandHistogram } from "./demand-histogram.js";
import {
  decide,
  type Explanation,
  explain,
  type PlacementPolicy,
  type PlacementRequest,
  type RejectionCode,
} from "./placement.js";
import { profileClassKey, resolveTarget } from "./profiles.js";
import { checkQuota, type QuotaConfig } from "./quota.js";

// ---- the agent port ----

export type AllocateTarget =
  | { readonly kind: "device"; readonly deviceUuid: string }
  | {
      readonly kind: "new-instance";
      readonly gpuUuid: string;
      readonly profile: string;
      readonly placementStart: number;
    };

export interface AgentAllocateRequest {
  readonly nodeId: string;
  readonly address: string | null;
  /** The agent's workload id (one slice). */
  readonly workloadId: string;
  readonly tenant: string;
  readonly target: AllocateTarget;
}

export interface AgentAllocateResult {
  readonly migUuid: string;
  readonly gpuInstanceId: number | null;
  readonly computeInstanceId: number | null;
  readonly placement: Placement | null;
  readonly createdAtMs: number;
  readonly instanceCreated: boolean;
}

export interface AgentReleaseRequest {
  readonly nodeId: string;
  readonly address: string | null;
  readonly workloadId: string;
}

/** `Allocate` / `Release` on one node's agent. Rejects when the agent refuses or cannot be reached. */
export interface AgentPort {
  allocate(request: AgentAllocateRequest, signal: AbortSignal): Promise<AgentAllocateResult>;
  release(request: AgentReleaseRequest, signal: AbortSignal): Promise<{ readonly released: boolean }>;
}

// ---- errors ----

/** No node can take the request now: gRPC RESOURCE_EXHAUSTED (or FAILED_PRECONDITION for constraints nothing meets). */
export class NoCapacityError extends TesseraError {
  readonly rejectionCounts: Readonly<Partial<Record<RejectionCode, number>>>;

  constructor(summary: string, rejectionCounts: Readonly<Partial<Record<RejectionCode, number>>>) {
    super("TESSERA_NO_CAPACITY", summary);
    this.rejectionCounts = rejectionCounts;
  }
}

/** The agent refused or did not answer; nothing is held (or, when in doubt, held until the agent's snapshot says). */
export class AllocationFailedError extends TesseraError {
  readonly workloadId: string;
  readonly inDoubt: readonly string[];

  constructor(workloadId: string, message: string, inDoubt: readonly string[], cause: unknown) {
    super("TESSERA_ALLOCATION_FAILED", message, { cause });
    this.workloadId = workloadId;
    this.inDoubt = inDoubt;
  }
}

/** The workload id already holds leases for another tenant. */
export class WorkloadConflictError extends TesseraError {
  constructor(workloadId: string, heldBy: string, asked: string) {
    super(
      "TESSERA_WORKLOAD_CONFLICT",
      `workload ${workloadId} is held by tenant ${heldBy}; tenant ${asked} cannot place or release it`,
    );
  }
}

/** The workload id holds a different number of slices than the request asks for. */
export class WorkloadSizeConflictError extends TesseraError {
  constructor(workloadId: string, held: number, asked: number) {
    super(
      "TESSERA_WORKLOAD_CONFLICT",
      `workload ${workloadId} holds ${held} slice${held === 1 ? "" : "s"}; this request asks for ${asked} ` +
        "(release it first, or use another workload id)",
    );
  }
}

export class AgentTimeoutError extends TesseraError {
  constructor(operation: string, nodeId: string, timeoutMs: number) {
    super("TESSERA_AGENT_TIMEOUT", `${operation} on node ${nodeId}: no answer within ${timeoutMs} ms`);
  }
}

// ---- request validation (the edge: the service parses RPCs into PlacementRequest, then this) ----

const MAX_COUNT = 64;
/** Agents take workload ids of up to 128 characters; slices add `+63`. */
export const MAX_WORKLOAD_ID_LENGTH = 120;

/** Throws InputError naming the field when a request cannot be placed as written. */
export function validatePlacementRequest(r: PlacementRequest): void {
  const fail = (field: string, why: string) => {
    throw new InputError(`${field}: ${why}`);
  };
  if (r.workloadId === "") fail("workload_id", "must not be empty");
  if (r.workloadId.includes(SLICE_SEPARATOR)) {
    fail("workload_id", `must not contain '${SLICE_SEPARATOR}' (it separates slices of count > 1 requests)`);
  }
  if (r.workloadId.length > MAX_WORKLOAD_ID_LENGTH) {
    fail("workload_id", `longer than ${MAX_WORKLOAD_ID_LENGTH} characters`);
  }
  if (r.tenant === "") fail("tenant", "must not be empty");
  if (!Number.isInteger(r.count) || r.count < 1 || r.count > MAX_COUNT) {
    fail("count", `must be an integer from 1 to ${MAX_COUNT}, got ${r.count}`);
  }
  if (r.target.kind === "profile") {
    if (r.target.name === "") fail("profile", "must not be empty");
  } else {
    const { memoryMiB, computeFraction } = r.target;
    if (!Number.isFinite(memoryMiB) || memoryMiB < 0) fail("shape.memory_mib", `must be ≥ 0, got ${memoryMiB}`);
    if (!Number.isFinite(computeFraction) || computeFraction < 0 || computeFraction > 1) {
      fail("shape.compute_fraction", `must be within 0…1, got ${computeFraction}`);
    }
    if (memoryMiB === 0 && computeFraction === 0) fail("shape", "asks for neither memory nor compute");
  }
}

// ---- results ----

export interface PlacedSlice {
  /** The agent's workload id of this slice. */
  readonly workloadId: string;
  readonly nodeId: string;
  readonly gpuUuid: string;
  readonly gpuIndex: number;
  readonly profileName: string;
  readonly placement: Placement | null;
  readonly migUuid: string | null;
  readonly gpuInstanceId: number | null;
  readonly computeInstanceId: number | null;
}

export interface PlaceResult {
  readonly workloadId: string;
  readonly tenant: string;
  readonly nodeId: string;
  readonly slices: readonly PlacedSlice[];
  /** MIG UUIDs of the slices, comma-separated. */
  readonly cudaVisibleDevices: string;
  /** False when the workload already held these leases (an idempotent retry). */
  readonly created: boolean;
  /** Per slice: memory and compute the profile holds beyond the shape (null for named profiles). */
  readonly wasteMiB: number | null;
}

function resultOf(records: readonly LeaseRecord[], created: boolean, wasteMiB: number | null): PlaceResult {
  const first = records[0] as LeaseRecord;
  const slices = records.map((r) => ({
    workloadId: r.workloadId,
    nodeId: r.nodeId,
    gpuUuid: r.gpuUuid,
    gpuIndex: r.gpuIndex,
    profileName: r.profileName,
    placement: r.placement,
    migUuid: r.migUuid,
    gpuInstanceId: r.gpuInstanceId,
    computeInstanceId: r.computeInstanceId,
  }));
  return {
    workloadId: first.groupId,
    tenant: first.tenant,
    nodeId: first.nodeId,
    slices,
    cudaVisibleDevices: records.map((r) => r.migUuid ?? r.gpuUuid).join(","),
    created,
    wasteMiB,
  };
}

// ---- the engine ----

export interface DecisionEngineOptions {
  readonly view: ClusterView;
  readonly agent: AgentPort;
  readonly demand: DemandHistogram;
  readonly quotas: QuotaConfig;
  readonly clock: () => number;
  readonly policy?: PlacementPolicy;
  /** Bound on each Allocate/Release call to an agent. */
  readonly agentTimeoutMs?: number;
}

const noop = () => {};

/** The agent may have acted on a call that timed out or was aborted: its outcome is unknown. */
function outcomeUnknown(reason: unknown): boolean {
  return reason instanceof AgentTimeoutError || (reason instanceof Error && reason.name === "AbortError");
}

/**
 * Places and releases workloads against the view and the agents. One per
 * scheduler; holds no global state. Every decision and its reservation
 * happen synchronously in one turn, before any await.
 */
export class DecisionEngine {
  private readonly view: ClusterView;
  private readonly agent: AgentPort;
  private readonly demand: DemandHistogram;
  private readonly clock: () => number;
  private readonly agentTimeoutMs: number;
  private readonly inflight = new Map<string, { tenant: string; promise: Promise<PlaceResult> }>();
  private readonly chains = new Map<string, Promise<void>>();
  quotas: QuotaConfig;
  policy: PlacementPolicy;

  constructor(options: DecisionEngineOptions) {
    this.view = options.view;
    this.agent = options.agent;
    this.demand = options.demand;
    this.quotas = options.quotas;
    this.clock = options.clock;
    this.policy = options.policy ?? "fragmentation";
    this.agentTimeoutMs = options.agentTimeoutMs ?? 30_000;
  }

  /** `Explain`: what `place` would consider now, without recording or reserving anything. */
  explain(request: PlacementRequest): Explanation {
    validatePlacementRequest(request);
    const nowMs = this.clock();
    return explain(this.view, request, { nowMs, weights: this.demand.weights(nowMs), policy: this.policy });
  }

  /**
   * `Place`: idempotent by workload id (a retry while the first is in flight
   * gets the same answer; after it, the leases held). Rejects with
   * InputError, NoCapacityError, QuotaExceededError, WorkloadConflictError
   * or AllocationFailedError.
   */
  place(request: PlacementRequest, signal?: AbortSignal): Promise<PlaceResult> {
    try {
      validatePlacementRequest(request);
    } catch (err) {
      return Promise.reject(err);
    }
    const running = this.inflight.get(request.workloadId);
    if (running) {
      if (running.tenant !== request.tenant) {
        return Promise.reject(new WorkloadConflictError(request.workloadId, running.tenant, request.tenant));
      }
      return running.promise;
    }
    const held = leasesOfGroup(this.view, request.workloadId);
    let repair: readonly LeaseRecord[] = [];
    if (held.length > 0) {
      const tenant = (held[0] as LeaseRecord).tenant;
      if (tenant !== request.tenant) {
        return Promise.reject(new WorkloadConflictError(request.workloadId, tenant, request.tenant));
      }
      if (held.length === request.count) return Promise.resolve(resultOf(held, false, null));
      // Slices `id+k` short of the count: a placement interrupted between its agent calls (a
      // scheduler killed mid-way). All or nothing: give them back, then place the whole request.
      const interrupted = held.length < request.count && held.every((r) => r.workloadId !== r.groupId);
      if (!interrupted) {
        return Promise.reject(new WorkloadSizeConflictError(request.workloadId, held.length, request.count));
      }
      repair = held;
    }
    let promise: Promise<PlaceResult>;
    try {
      promise = repair.length > 0 ? this.releaseThenPlace(request, repair, signal) : this.placeNew(request, signal);
    } catch (err) {
      return Promise.reject(err);
    }
    this.inflight.set(request.workloadId, { tenant: request.tenant, promise });
    const done = () => {
      this.inflight.delete(request.workloadId);
    };
    promise.then(done, done);
    return promise;
  }

  /** Decides, checks quota and reserves synchronously; returns the agent round trip. Throws synchronously before reserving. */
  private placeNew(request: PlacementRequest, signal: AbortSignal | undefined): Promise<PlaceResult> {
    signal?.throwIfAborted();
    const nowMs = this.clock();
    this.recordDemand(request, nowMs);
    const ctx = { nowMs, weights: this.demand.weights(nowMs), policy: this.policy };
    const outcome = decide(this.view, request, ctx);
    if (!outcome.ok) throw new NoCapacityError(outcome.summary, outcome.rejectionCounts);
    const slices = outcome.decision.slices;
    const cost = slices.reduce(
      (a, s) => ({ computeSlices: a.computeSlices + s.computeSlices, memorySlices: a.memorySlices + s.memorySlices }),
      { computeSlices: 0, memorySlices: 0 },
    );
    checkQuota(this.quotas, request.tenant, tenantUsage(this.view, request.tenant), cost);
    const reservations: SliceReservation[] = slices.map((s) => ({
      gpuUuid: s.gpuUuid,
      profileId: s.profileId,
      profileName: s.profileName,
      placement: s.placement,
      migUuid: s.migUuid,
      gpuInstanceId: s.gpuInstanceId,
      computeInstanceId: s.computeInstanceId,
    }));
    const records = reserveSlices(this.view, request, reservations, nowMs);
    const wasteMiB = slices[0]?.waste?.memoryMiB ?? null;
    return this.confirm(request, records, wasteMiB, signal);
  }

  private async releaseThenPlace(
    request: PlacementRequest,
    held: readonly LeaseRecord[],
    signal: AbortSignal | undefined,
  ): Promise<PlaceResult> {
    await Promise.all(
      held.map((rec) =>
        this.serialized(rec.gpuUuid, async () => {
          await this.call((s) => this.agent.release(this.releaseRequest(rec), s), rec, "Release", undefined);
          removeLease(this.view, rec.workloadId, this.clock());
        }),
      ),
    );
    return this.placeNew(request, signal);
  }

  private recordDemand(request: PlacementRequest, nowMs: number): void {
    // One class per GPU model the request could land on, so a shape counts where it would go.
    const keys: string[] = [];
    for (const t of this.view.catalog.all()) {
      const r = resolveTarget(t.geometry, request.target);
      if (r.ok) keys.push(profileClassKey(r.profile));
    }
    this.demand.record(keys, nowMs);
  }

  private async confirm(
    request: PlacementRequest,
    records: readonly LeaseRecord[],
    wasteMiB: number | null,
    signal: AbortSignal | undefined,
  ): Promise<PlaceResult> {
    const outcomes = await Promise.allSettled(
      records.map((rec) =>
        this.serialized(rec.gpuUuid, () =>
          this.call((s) => this.agent.allocate(this.allocateRequest(rec), s), rec, "Allocate", signal),
        ),
      ),
    );
    const failed = outcomes.find((o) => o.status === "rejected");
    if (!failed) {
      const now = this.clock();
      outcomes.forEach((o, i) => {
        const rec = records[i] as LeaseRecord;
        if (o.status === "fulfilled") confirmSlice(this.view, rec.workloadId, o.value, now);
      });
      return resultOf(leasesOfGroup(this.view, request.workloadId), true, wasteMiB);
    }
    // All or nothing: undo what the agents did, drop what they did not.
    const inDoubt: string[] = [];
    await Promise.all(
      records.map(async (rec, i) => {
        const o = outcomes[i];
        const timedOut = o?.status === "rejected" && outcomeUnknown(o.reason);
        try {
          const r = await this.serialized(rec.gpuUuid, () =>
            this.call((s) => this.agent.release(this.releaseRequest(rec), s), rec, "Release", undefined),
          );
          // After a timeout, "nothing to release" may mean the allocation has not landed yet: keep holding.
          if (timedOut && !r.released) {
            markSliceInDoubt(this.view, rec.workloadId, this.clock());
            inDoubt.push(rec.workloadId);
          } else {
            cancelSlice(this.view, rec.workloadId);
          }
        } catch {
          markSliceInDoubt(this.view, rec.workloadId, this.clock());
          inDoubt.push(rec.workloadId);
        }
      }),
    );
    const reason = failed.status === "rejected" ? failed.reason : undefined;
    const why = reason instanceof Error ? reason.message : String(reason);
    throw new AllocationFailedError(
      request.workloadId,
      `workload ${request.workloadId}: the agent did not allocate (${why})` +
        (inDoubt.length > 0 ? `; ${inDoubt.join(", ")} held until the agent's next snapshot` : "; nothing is held"),
      inDoubt,
      reason,
    );
  }

  /**
   * `Release`: every slice of the workload, through its agent. Returns false
   * when the workload held nothing. A slice whose agent cannot be reached
   * stays leased in the view (reported, not forgotten) and the call rejects.
   */
  async release(workloadId: string, tenant?: string): Promise<{ readonly released: boolean; readonly slices: number }> {
    const running = this.inflight.get(workloadId);
    if (running) await running.promise.then(noop, noop);
    const records = leasesOfGroup(this.view, workloadId);
    if (records.length === 0) return { released: false, slices: 0 };
    const owner = (records[0] as LeaseRecord).tenant;
    if (tenant !== undefined && tenant !== owner) throw new WorkloadConflictError(workloadId, owner, tenant);
    const results = await Promise.allSettled(
      records.map((rec) =>
        this.serialized(rec.gpuUuid, async () => {
          await this.call((s) => this.agent.release(this.releaseRequest(rec), s), rec, "Release", undefined);
          removeLease(this.view, rec.workloadId, this.clock());
        }),
      ),
    );
    const failed = results.find((r) => r.status === "rejected");
    if (failed && failed.status === "rejected") throw failed.reason;
    return { released: true, slices: records.length };
  }

  private allocateRequest(rec: LeaseRecord): AgentAllocateRequest {
    const node = this.view.nodes.get(rec.nodeId);
    const target: AllocateTarget =
      rec.migUuid !== null
        ? { kind: "device", deviceUuid: rec.migUuid }
        : {
            kind: "new-instance",
            gpuUuid: rec.gpuUuid,
            profile: rec.profileName,
            placementStart: rec.placement?.start ?? 0,
          };
    return {
      nodeId: rec.nodeId,
      address: node?.address ?? null,
      workloadId: rec.workloadId,
      tenant: rec.tenant,
      target,
    };
  }

  private releaseRequest(rec: LeaseRecord): AgentReleaseRequest {
    const node = this.view.nodes.get(rec.nodeId);
    return { nodeId: rec.nodeId, address: node?.address ?? null, workloadId: rec.workloadId };
  }

  /** Runs one agent call with the engine's timeout (and the caller's signal); a timeout rejects with AgentTimeoutError. */
  private call<T>(
    fn: (signal: AbortSignal) => Promise<T>,
    rec: LeaseRecord,
    operation: string,
    outer: AbortSignal | undefined,
  ): Promise<T> {
    const controller = new AbortController();
    const onAbort = () => controller.abort(outer?.reason);
    outer?.addEventListener("abort", onAbort, { once: true });
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        const err = new AgentTimeoutError(operation, rec.nodeId, this.agentTimeoutMs);
        controller.abort(err);
        reject(err);
      }, this.agentTimeoutMs);
      const settle = () => {
        clearTimeout(timer);
        outer?.removeEventListener("abort", onAbort);
      };
      let started: Promise<T>;
      try {
        started = fn(controller.signal);
      } catch (err) {
        settle();
        reject(err);
        return;
      }
      started.then(
        (v) => {
          settle();
          resolve(v);
        },
        (err: unknown) => {
          settle();
          reject(err);
        },
      );
    });
  }

  /** Runs `fn` after every earlier call on the same GPU has settled: one MIG change at a time per GPU. */
  private serialized<T>(gpuUuid: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.chains.get(gpuUuid) ?? Promise.resolve();
    const run = previous.then(fn);
    const tail = run.then(noop, noop);
    this.chains.set(gpuUuid, tail);
    tail.then(() => {
      if (this.chains.get(gpuUuid) === tail) this.chains.delete(gpuUuid);
    }, noop);
    return run;
  }

  /** GPUs with agent calls queued or running (for metrics and tests). */
  busyGpus(): number {
    return this.chains.size;
  }
}
