// NodeAgentService handlers: validate at the edge, read snapshots (never NVML), delegate changes to
// the lease service and the MIG manager, and map every error through src/rpc/status.ts.
import { create } from "@bufbuild/protobuf";
import { status as grpcStatus, type ServerUnaryCall, type ServiceError, type sendUnaryData } from "@grpc/grpc-js";
import { TesseraError } from "../errors.js";
import {
  AllocateResponseSchema,
  GetNodeResponseSchema,
  ListLeasesResponseSchema,
  type NodeAgentService,
  PlanMigLayoutResponseSchema,
  ReleaseResponseSchema,
} from "../gen/tessera/v1/agent_pb.js";
import type { Ledger } from "../ledger/ledger.js";
import { leaseDeviceUuid } from "../ledger/types.js";
import type { ServiceImpl } from "../rpc/grpc-adapter.js";
import { callerOf } from "../rpc/server-auth.js";
import { toServiceError } from "../rpc/status.js";
import { validateAllocate, validateMigSpec, validateRelease, validateWatch } from "../rpc/validate.js";
import type { AgentMetrics } from "./agent-metrics.js";
import type { DiagnosticsDeps } from "./diagnostics.js";
import type { LeaseService } from "./lease-service.js";
import type { Logger } from "./logger.js";
import { type MigOps, migLayoutProto } from "./mig-ops.js";
import type { NodeSnapshot } from "./node-state.js";
import { leaseProto, type SnapshotViews } from "./proto.js";
import { TooManyWatchersError, type WatchHub } from "./watch-hub.js";

export class NotReadyError extends TesseraError {
  constructor(why: string) {
    super("TESSERA_NOT_READY", why);
  }
}

export class ShuttingDownError extends TesseraError {
  constructor() {
    super("TESSERA_SHUTTING_DOWN", "the agent is shutting down");
  }
}

export interface ServiceDeps {
  readonly snapshot: () => NodeSnapshot | undefined;
  readonly views: SnapshotViews;
  readonly ledger: Ledger;
  readonly leases: LeaseService;
  readonly mig: MigOps;
  readonly hub: WatchHub;
  readonly metrics: AgentMetrics;
  readonly log: Logger;
  readonly stopping: () => boolean;
  /** RunDiagnostics; absent: UNIMPLEMENTED. */
  readonly diagnostics?: DiagnosticsDeps;
}

type Methods = (typeof NodeAgentService)["method"];

export function nodeAgentService(d: ServiceDeps): ServiceImpl<Methods> {
  const current = (): NodeSnapshot => {
    if (d.stopping()) throw new ShuttingDownError();
    const s = d.snapshot();
    if (!s) throw new NotReadyError("the agent has not finished its first sweep of the host yet");
    return s;
  };
  const leases = () => [...d.ledger.state.leases.values()].map(leaseProto);

  /** Runs a unary handler: result or mapped error, counted and (for failures) logged. */
  function unary<I, O>(method: string, handle: (request: I, call: ServerUnaryCall<I, O>) => Promise<O> | O) {
    return (call: ServerUnaryCall<I, O>, callback: sendUnaryData<O>) => {
      Promise.resolve()
        .then(() => handle(call.request, call))
        .then(
          (res) => {
            d.metrics.rpcs.inc({ method, code: "OK" });
            callback(null, res);
          },
          (err: unknown) => {
            const se = toServiceError(err);
            d.metrics.rpcs.inc({ method, code: grpcStatus[se.code ?? grpcStatus.INTERNAL] ?? "UNKNOWN" });
            const caller = callerOf(call.metadata);
            const level = se.code === grpcStatus.INTERNAL ? "error" : "info";
            d.log[level]({ method, caller: caller.principal, code: se.code, err: se.details }, "request refused");
            callback(se as ServiceError, null);
          },
        );
    };
  }

  return {
    getNode: unary("GetNode", () => {
      const s = current();
      return create(GetNodeResponseSchema, { node: d.views.node(s), leases: leases(), sample: d.views.sample(s) });
    }),

    watchNode: (call) => {
      try {
        validateWatch(call.request);
        current();
        d.hub.add(call);
        d.metrics.rpcs.inc({ method: "WatchNode", code: "OK" });
      } catch (err) {
        const se =
          err instanceof TooManyWatchersError
            ? { code: grpcStatus.RESOURCE_EXHAUSTED, details: err.message }
            : toServiceError(err);
        d.metrics.rpcs.inc({ method: "WatchNode", code: grpcStatus[se.code ?? grpcStatus.INTERNAL] ?? "UNKNOWN" });
        call.emit("error", se);
      }
    },

    getMigLayout: unary("GetMigLayout", () => migLayoutProto(current())),

    planMigLayout: unary("PlanMigLayout", async (req) => {
      const p = validateMigSpec(req);
      current();
      return create(PlanMigLayoutResponseSchema, { plan: await d.mig.plan(p) });
    }),

    applyMigLayout: unary("ApplyMigLayout", async (req, call) => {
      const p = validateMigSpec(req);
      current();
      const caller = callerOf(call.metadata);
      d.log.info(
        { caller: caller.principal, spec: p.specName, config: p.configName, dryRun: req.dryRun, force: req.force },
        "MIG apply requested",
      );
      return d.mig.apply(p, req.dryRun, req.force);
    }),

    allocate: unary("Allocate", async (req, call) => {
      const r = validateAllocate(req);
      current();
      const outcome = await d.leases.allocate(r);
      if (outcome.created)
        d.log.info(
          {
            caller: callerOf(call.metadata).principal,
            workloadId: r.workloadId,
            tenant: r.tenant,
            device: leaseDeviceUuid(outcome.lease),
          },
          "lease allocated",
        );
      return create(AllocateResponseSchema, {
        lease: leaseProto(outcome.lease),
        cudaVisibleDevices: leaseDeviceUuid(outcome.lease),
        created: outcome.created,
      });
    }),

    release: unary("Release", async (req) => {
      const id = validateRelease(req);
      current();
      const outcome = await d.leases.release(id);
      return create(ReleaseResponseSchema, {
        released: outcome.released,
        instanceDestroyed: outcome.instanceDestroyed,
      });
    }),

    listLeases: unary("ListLeases", () => {
      current();
      return create(ListLeasesResponseSchema, { leases: leases() });
    }),

    runDiagnostics: (call) => {
      const deps = d.diagnostics;
      if (!deps) {
        d.metrics.rpcs.inc({ method: "RunDiagnostics", code: "UNIMPLEMENTED" });
        call.emit("error", { code: grpcStatus.UNIMPLEMENTED, details: "diagnostics are not served by this agent" });
        return;
      }
      // Loaded at the first run: diagnostics bring their own checks and NVML probe code, which the
      // agent's main thread otherwise never needs (it keeps the daemon's resident memory down).
      import("./diagnostics.js")
        .then(({ serveDiagnostics }) => serveDiagnostics(deps, call))
        .then(
          () => d.metrics.rpcs.inc({ method: "RunDiagnostics", code: "OK" }),
          (err: unknown) => {
            const e = toServiceError(err);
            d.metrics.rpcs.inc({
              method: "RunDiagnostics",
              code: e.code === undefined ? "UNKNOWN" : (grpcStatus[e.code] ?? String(e.code)),
            });
            d.log.warn({ err }, "RunDiagnostics failed");
            call.emit("error", e);
          },
        );
    },
  };
}
