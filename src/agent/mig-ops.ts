// The MIG RPCs: the layout comes from the latest snapshot; plan and apply are delegated to the MIG
// manager on the control thread (which reads NVML for the plan and journals the apply).
import { create } from "@bufbuild/protobuf";
import { stringify } from "yaml";
import {
  type ApplyMigLayoutResponse,
  ApplyMigLayoutResponseSchema,
  ApplyOutcome,
  type GetMigLayoutResponse,
  GetMigLayoutResponseSchema,
  type MigPlan,
  MigPlanSchema,
} from "../gen/tessera/v1/agent_pb.js";
import type { GpuOutcome, MigApplyReport, MigPlanResult } from "../mig/manager.js";
import type { MigSpecParams } from "../rpc/validate.js";
import type { ControlPort } from "./lease-service.js";
import { ReadOnlyModeError } from "./lease-service.js";
import type { NodeSnapshot } from "./node-state.js";

const OUTCOME: Record<GpuOutcome, ApplyOutcome> = {
  unchanged: ApplyOutcome.UNCHANGED,
  applied: ApplyOutcome.APPLIED,
  "pending-reset": ApplyOutcome.PENDING_RESET,
  "rolled-back": ApplyOutcome.ROLLED_BACK,
  failed: ApplyOutcome.FAILED,
};

export function migLayoutProto(snapshot: NodeSnapshot): GetMigLayoutResponse {
  const configs: Record<string, unknown>[] = [];
  const gpus = snapshot.sweep.gpus
    .filter((g) => g.identity.migCapable)
    .map((g) => {
      const mig = g.mig;
      const enabled = mig?.enabled ?? false;
      configs.push({
        devices: [g.identity.index],
        "mig-enabled": enabled,
        ...(enabled ? { "mig-devices": { ...(mig?.exportedDevices ?? {}) } } : {}),
      });
      const f = mig?.fragmentation;
      return {
        gpuIndex: g.identity.index,
        gpuUuid: g.identity.uuid,
        model: g.identity.name,
        migEnabled: enabled,
        migPendingEnabled: mig?.pendingEnabled ?? false,
        instances: (mig?.instances ?? []).map((gi) => ({
          gpuInstanceId: gi.gpuInstanceId,
          profileId: gi.profileId,
          profileName: gi.profileName,
          placement: { ...gi.placement },
          computeInstances: gi.computeInstances.map((ci) => ({
            computeInstanceId: ci.computeInstanceId,
            profileId: ci.profileId,
            profileName: ci.profileName,
            uuid: ci.uuid,
            processIds: [...ci.processIds],
          })),
        })),
        slotMap: mig?.slotMap ?? "",
        ...(f
          ? {
              fragmentation: {
                freeMemorySlices: f.freeMemorySlices,
                strandedMemorySlices: f.strandedMemorySlices,
                largestFittingProfile: f.largestFittingProfile,
                fits: f.fits.map((x) => ({ ...x })),
                score: f.score,
              },
            }
          : {}),
      };
    });
  return create(GetMigLayoutResponseSchema, {
    gpus,
    migPartedYaml: stringify({ version: "v1", "mig-configs": { current: configs } }),
  });
}

export function migPlanProto(result: MigPlanResult): MigPlan {
  return create(MigPlanSchema, {
    feasible: result.plan.feasible,
    gpus: result.plan.gpus.map((g) =>
      g.feasible
        ? {
            gpuIndex: g.gpu.index,
            gpuUuid: g.gpu.uuid,
            feasible: true,
            keep: g.keep.length,
            destroy: g.destroy.length,
            create: g.create.length,
            modeChange: g.modeChange ? `${g.modeChange.from} → ${g.modeChange.to}` : "",
            slotMapBefore: g.slotsBefore,
            slotMapAfter: g.slotsAfter,
          }
        : {
            gpuIndex: g.gpu.index,
            gpuUuid: g.gpu.uuid,
            feasible: false,
            reason: g.reason,
            slotMapBefore: g.slotsBefore,
          },
    ),
    rendered: result.rendered,
    json: JSON.stringify({
      config: result.config,
      plan: result.plan,
      warnings: result.warnings,
      deferred: result.deferred,
    }),
  });
}

export interface MigOpsOptions {
  readonly control: ControlPort;
  readonly readOnly: boolean;
  readonly planTimeoutMs: number;
  readonly applyTimeoutMs: number;
  readonly leaseHolders: () => Record<string, string[]>;
  /** After an apply: the sampler re-reads layouts. */
  readonly layoutsChanged: () => void;
}

export class MigOps {
  readonly #o: MigOpsOptions;
  #inFlight: Promise<unknown> | undefined;

  constructor(options: MigOpsOptions) {
    this.#o = options;
  }

  /** Resolves when no apply is in progress (shutdown). */
  async idle(): Promise<void> {
    await this.#inFlight?.catch(() => undefined);
  }

  async plan(p: MigSpecParams): Promise<MigPlan> {
    const result = await this.#o.control.request<MigPlanResult>(
      "mig-plan",
      { ...p, dryRun: true, force: false, leaseHolders: {} },
      this.#o.planTimeoutMs,
    );
    return migPlanProto(result);
  }

  async apply(p: MigSpecParams, dryRun: boolean, force: boolean): Promise<ApplyMigLayoutResponse> {
    if (this.#o.readOnly && !dryRun) throw new ReadOnlyModeError("ApplyMigLayout");
    const run = this.#o.control.request<MigApplyReport>(
      "mig-apply",
      { ...p, dryRun, force, leaseHolders: this.#o.leaseHolders() },
      this.#o.applyTimeoutMs,
    );
    this.#inFlight = run;
    try {
      const report = await run;
      if (!dryRun) this.#o.layoutsChanged();
      return create(ApplyMigLayoutResponseSchema, {
        plan: migPlanProto(report.planned),
        results: report.results.map((r) => ({ gpuIndex: r.gpuIndex, outcome: OUTCOME[r.outcome], message: r.message })),
      });
    } finally {
      if (this.#inFlight === run) this.#inFlight = undefined;
    }
  }
}
