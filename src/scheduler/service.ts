// SchedulerService handlers: validate at the edge (INVALID_ARGUMENT naming the field), check the
// caller's narrowing (tenants, node ids), delegate to the decision engine and the cluster view, and
// map every error through src/rpc/status.ts. The service holds no state of its own beyond counters:
// everything it answers comes from the view, which comes from the agents.
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import {
  status as grpcStatus,
  type ServerUnaryCall,
  type ServerWritableStream,
  type ServiceError,
  type sendUnaryData,
} from "@grpc/grpc-js";
import { errorMessage, TesseraError } from "../errors.js";
import {
  type Cluster,
  GetClusterResponseSchema,
  RegisterNodeResponseSchema,
  ReleaseWorkloadResponseSchema,
  type SchedulerService,
  type WatchClusterRequest,
  type WatchClusterResponse,
  WatchClusterResponseSchema,
} from "../gen/tessera/v1/scheduler_pb.js";
import type { ServiceImpl } from "../rpc/grpc-adapter.js";
import { toServiceError } from "../rpc/status.js";
import { checkNode, checkTenant, schedulerCallerOf } from "./auth.js";
import { type ClusterView, leasesOfGroup, registerNode } from "./cluster.js";
import type { DecisionEngine } from "./decisions.js";
import type { DemandHistogram } from "./demand-histogram.js";
import { describeCluster } from "./describe.js";
import type { Logger } from "./logger.js";
import { checkQuota, type QuotaConfig, QuotaExceededError } from "./quota.js";
import { clusterProto, explainResponse, placeResponse, type SchedulerStats } from "./scheduler-proto.js";
import {
  validateExplain,
  validatePlace,
  validateRegister,
  validateReleaseWorkload,
  validateWatchCluster,
} from "./validate.js";

export class SchedulerNotReadyError extends TesseraError {
  constructor(why: string) {
    super("TESSERA_NOT_READY", why);
  }
}

export class SchedulerShuttingDownError extends TesseraError {
  constructor() {
    super("TESSERA_SHUTTING_DOWN", "the scheduler is shutting down");
  }
}

export interface LeaseBounds {
  readonly defaultMs: number;
  readonly minMs: number;
  readonly maxMs: number;
}

export interface SchedulerServiceDeps {
  readonly view: ClusterView;
  readonly engine: DecisionEngine;
  readonly demand: DemandHistogram;
  readonly quotas: () => QuotaConfig;
  readonly clock: () => number;
  readonly log: Logger;
  readonly stats: SchedulerStats;
  readonly allowSimulated: boolean;
  readonly leaseBounds: LeaseBounds;
  /** Why Place and Release are refused now (the view is still being rebuilt), or null. */
  readonly notReady: () => string | null;
  /** Throws (INVALID_ARGUMENT / FAILED_PRECONDITION) for an agent address this scheduler will not connect to. */
  readonly checkAddress: (address: string) => void;
  /** An agent registered or renewed: link to it (or renew the link). */
  readonly onRegister: (nodeId: string, address: string) => void;
  readonly linkState: (nodeId: string) => string;
  readonly stopping: () => boolean;
}

type Methods = (typeof SchedulerService)["method"];

/** The cluster as a message, built once per view version (and readiness) and shared by every reader. */
class ClusterCache {
  #key = "";
  #value: Cluster | undefined;

  get(d: SchedulerServiceDeps): Cluster {
    const nowMs = d.clock();
    const notReady = d.notReady();
    // Availability and XID holds change with time: rebuild at least once a second.
    const key = `${d.view.version}/${Math.floor(nowMs / 1000)}/${notReady ?? ""}/${d.stats.placed}/${d.stats.released}`;
    if (this.#value && key === this.#key) return this.#value;
    const report = describeCluster(d.view, nowMs, d.demand.weights(nowMs));
    this.#value = clusterProto(report, {
      nowMs,
      tenantUsage: d.view.tenantUsage,
      quotas: d.quotas(),
      stats: d.stats,
      notReadyReason: notReady,
      linkState: d.linkState,
    });
    this.#key = key;
    return this.#value;
  }

  /** The view version the cached message shows. */
  get version(): string {
    return this.#key;
  }
}

export function schedulerService(d: SchedulerServiceDeps): ServiceImpl<Methods> {
  const cache = new ClusterCache();
  const live = () => {
    if (d.stopping()) throw new SchedulerShuttingDownError();
  };
  const ready = () => {
    live();
    const why = d.notReady();
    if (why !== null) throw new SchedulerNotReadyError(why);
  };

  function unary<I, O>(method: string, handle: (request: I, call: ServerUnaryCall<I, O>) => Promise<O> | O) {
    return (call: ServerUnaryCall<I, O>, callback: sendUnaryData<O>) => {
      Promise.resolve()
        .then(() => handle(call.request, call))
        .then(
          (res) => callback(null, res),
          (err: unknown) => {
            const se = toServiceError(err);
            const level = se.code === grpcStatus.INTERNAL ? "error" : "info";
            d.log[level](
              { method, caller: schedulerCallerOf(call.metadata).principal, code: se.code, err: se.details },
              "request refused",
            );
            callback(se as ServiceError, null);
          },
        );
    };
  }

  return {
    registerNode: unary("RegisterNode", (req, call) => {
      live();
      const r = validateRegister(req);
      checkNode(schedulerCallerOf(call.metadata), r.nodeId);
      d.checkAddress(r.address);
      const b = d.leaseBounds;
      const ttl = r.leaseTtlMs === 0 ? b.defaultMs : Math.min(b.maxMs, Math.max(b.minMs, r.leaseTtlMs));
      const previous = d.view.nodes.get(r.nodeId)?.address ?? null;
      const out = registerNode(d.view, { nodeId: r.nodeId, address: r.address, leaseTtlMs: ttl }, d.clock());
      d.onRegister(r.nodeId, r.address);
      if (out.firstRegistration || previous !== r.address)
        d.log.info({ node: r.nodeId, address: r.address, leaseTtlMs: ttl }, "agent registered");
      return create(RegisterNodeResponseSchema, {
        leaseExpiresAt: timestampFromMs(out.leaseExpiresAtMs),
        leaseTtlMs: ttl,
        renewIntervalMs: Math.max(100, Math.floor(ttl / 3)),
        firstRegistration: out.firstRegistration,
      });
    }),

    place: unary("Place", async (req, call) => {
      const caller = schedulerCallerOf(call.metadata);
      try {
        const r = validatePlace(req, d.allowSimulated);
        checkTenant(caller, r.tenant);
        ready();
        const result = await d.engine.place(r);
        if (result.created) {
          d.stats.placed++;
          d.log.info(
            {
              caller: caller.principal,
              workloadId: result.workloadId,
              tenant: result.tenant,
              node: result.nodeId,
              devices: result.cudaVisibleDevices,
            },
            "placed",
          );
        } else d.stats.idempotentReplays++;
        return placeResponse(result, d.view.nodes.get(result.nodeId)?.address ?? null);
      } catch (err) {
        d.stats.refuse(err instanceof TesseraError ? err.code : "TESSERA_INTERNAL");
        throw err;
      }
    }),

    releaseWorkload: unary("ReleaseWorkload", async (req, call) => {
      const caller = schedulerCallerOf(call.metadata);
      const r = validateReleaseWorkload(req);
      if (r.tenant !== null) checkTenant(caller, r.tenant);
      const owner = leasesOfGroup(d.view, r.workloadId)[0]?.tenant;
      if (owner !== undefined) checkTenant(caller, owner);
      ready();
      const out = await d.engine.release(r.workloadId, r.tenant ?? undefined);
      if (out.released) {
        d.stats.released++;
        d.log.info({ caller: caller.principal, workloadId: r.workloadId, slices: out.slices }, "released");
      }
      return create(ReleaseWorkloadResponseSchema, { released: out.released, slices: out.slices });
    }),

    getCluster: unary("GetCluster", () => {
      live();
      return create(GetClusterResponseSchema, { cluster: cache.get(d) });
    }),

    watchCluster: (call: ServerWritableStream<WatchClusterRequest, WatchClusterResponse>) => {
      let intervalMs: number;
      try {
        live();
        intervalMs = validateWatchCluster(call.request).intervalMs;
      } catch (err) {
        call.emit("error", toServiceError(err));
        return;
      }
      let closed = false;
      let blocked = false;
      let sent = "";
      let sentAtMs = Number.NEGATIVE_INFINITY;
      let timer: NodeJS.Timeout | undefined;
      const stop = () => {
        closed = true;
        clearTimeout(timer);
      };
      call.on("cancelled", stop);
      call.on("close", stop);
      call.on("error", stop);
      call.on("drain", () => {
        blocked = false;
      });
      // Polls often (so shutdown never waits long on a stream) and writes at most once per interval.
      const pollMs = Math.min(intervalMs, 250);
      const tick = () => {
        if (closed) return;
        if (d.stopping()) {
          stop();
          call.end();
          return;
        }
        const now = d.clock();
        if (!blocked && now - sentAtMs >= intervalMs) {
          try {
            const cluster = cache.get(d);
            const version = `${cluster.version}/${cluster.notReadyReason}/${cluster.stats?.placed}/${cluster.stats?.released}`;
            if (version !== sent) {
              sent = version;
              sentAtMs = now;
              if (!call.write(create(WatchClusterResponseSchema, { cluster }))) blocked = true;
            }
          } catch (err) {
            d.log.error({ err: errorMessage(err) }, "WatchCluster update failed");
          }
        }
        timer = setTimeout(tick, pollMs);
      };
      tick();
    },

    explain: unary("Explain", (req) => {
      live();
      const r = validateExplain(req, d.allowSimulated);
      const e = d.engine.explain(r);
      let quotaRefusal: string | null = null;
      if (e.decision) {
        const cost = e.decision.slices.reduce(
          (a, s) => ({
            computeSlices: a.computeSlices + s.computeSlices,
            memorySlices: a.memorySlices + s.memorySlices,
          }),
          { computeSlices: 0, memorySlices: 0 },
        );
        try {
          checkQuota(
            d.quotas(),
            r.tenant,
            d.view.tenantUsage.get(r.tenant) ?? { computeSlices: 0, memorySlices: 0 },
            cost,
          );
        } catch (err) {
          if (!(err instanceof QuotaExceededError)) throw err;
          quotaRefusal = err.message;
        }
      }
      return explainResponse(e, quotaRefusal, leasesOfGroup(d.view, r.workloadId).length > 0);
    }),
  };
}
