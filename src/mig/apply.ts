// Carries out one GPU's plan against NVML, transactionally: every mutation is recorded, and a failure
// part-way undoes them in reverse, restoring the same profiles at the same placements.
import { TesseraError } from "../errors.js";
import { type Device, type GpuInstance, NvmlError } from "../nvml/index.js";
import type { CreateStep, FeasibleGpuPlan, PlannedComputeInstance } from "./plan.js";
import type { GpuGeometry, MigMode, Placement } from "./types.js";

/** A test hook's way to stop apply exactly where a crash would: no rollback, the journal stays. */
export class SimulatedCrash extends Error {
  constructor(step: number) {
    super(`simulated crash after mutation ${step}`);
    this.name = "SimulatedCrash";
  }
}

/** Apply failed and was rolled back (or could not be); `rolledBack` says which. */
export class MigApplyError extends TesseraError {
  readonly gpuIndex: number;
  readonly rolledBack: boolean;

  constructor(gpuIndex: number, message: string, rolledBack: boolean, cause: unknown) {
    super(rolledBack ? "TESSERA_MIG_APPLY_ROLLED_BACK" : "TESSERA_MIG_APPLY_FAILED", message, { cause });
    this.gpuIndex = gpuIndex;
    this.rolledBack = rolledBack;
  }
}

export interface MutationHooks {
  /** Called after each successful mutation (1-based); may throw SimulatedCrash. */
  afterMutation?: (step: number, what: string) => void;
  log?: (fields: Record<string, unknown>, message: string) => void;
}

type Undo =
  | { kind: "gi-created"; giId: number }
  | { kind: "ci-created"; giId: number; ciId: number }
  | { kind: "gi-destroyed"; giId: number; profileId: number; placement: Placement }
  | { kind: "ci-destroyed"; giId: number; ciSlices: number }
  | { kind: "mode"; from: boolean };

export type GpuApplyOutcome = "unchanged" | "applied" | "pending-reset";

/** Compute-instance profile IDs are resolved on the live GPU instance by slice count. */
function ciSlicesOf(geometry: GpuGeometry | null, giProfileId: number, ciProfileId: number): number {
  const profile = geometry?.profiles.find((p) => p.id === giProfileId);
  const ci = profile?.computeProfiles.find((c) => c.id === ciProfileId);
  if (ci) return ci.sliceCount;
  if (profile && ciProfileId === profile.defaultComputeProfileId) return profile.sliceCount;
  throw new TesseraError(
    "TESSERA_MIG_GEOMETRY",
    `unknown compute-instance profile ${ciProfileId} in GPU-instance profile ${giProfileId}`,
  );
}

function createCi(gi: GpuInstance, slices: number): number {
  const profile = gi.computeInstanceProfiles().find((p) => p.sliceCount === slices);
  if (!profile)
    throw new TesseraError(
      "TESSERA_MIG_GEOMETRY",
      `GPU instance ${gi.id} has no ${slices}-slice compute-instance profile`,
    );
  return gi.createComputeInstance(profile.id).id;
}

function giById(device: Device, giId: number): GpuInstance {
  const gi = device.mig.gpuInstanceById(giId);
  if (!gi) throw new TesseraError("TESSERA_MIG_STATE", `GPU instance ${giId} vanished during apply`);
  return gi;
}

function destroyCi(gi: GpuInstance, ciId: number): number {
  const ci = gi.computeInstanceById(ciId);
  if (!ci)
    throw new TesseraError(
      "TESSERA_MIG_STATE",
      `compute instance ${ciId} of GPU instance ${gi.id} vanished during apply`,
    );
  const slices = ci.info().placement.size;
  ci.destroy();
  return slices;
}

export class GpuApplier {
  readonly #device: Device;
  readonly #geometry: GpuGeometry | null;
  readonly #hooks: MutationHooks;
  readonly #undo: Undo[] = [];
  #steps = 0;

  constructor(device: Device, geometry: GpuGeometry | null, hooks: MutationHooks = {}) {
    this.#device = device;
    this.#geometry = geometry;
    this.#hooks = hooks;
  }

  #did(undo: Undo, what: string): void {
    this.#undo.push(undo);
    this.#steps++;
    this.#hooks.log?.({ gpu: this.#device.index, step: this.#steps, what }, "MIG mutation");
    this.#hooks.afterMutation?.(this.#steps, what);
  }

  /** Runs the plan; on failure rolls back and throws MigApplyError. SimulatedCrash passes through. */
  run(plan: FeasibleGpuPlan): GpuApplyOutcome {
    if (!plan.changed) return "unchanged";
    try {
      return this.#execute(plan);
    } catch (err) {
      if (err instanceof SimulatedCrash) throw err;
      const what = err instanceof Error ? err.message : String(err);
      try {
        this.rollback();
      } catch (undoErr) {
        throw new MigApplyError(
          plan.gpu.index,
          `GPU ${plan.gpu.index} (${plan.gpu.uuid}): apply failed (${what}) and rollback failed too (${(undoErr as Error).message}); the journal is kept for the next start`,
          false,
          err,
        );
      }
      throw new MigApplyError(
        plan.gpu.index,
        `GPU ${plan.gpu.index} (${plan.gpu.uuid}): apply failed (${what}); rolled back to the previous layout`,
        true,
        err,
      );
    }
  }

  #execute(plan: FeasibleGpuPlan): GpuApplyOutcome {
    const device = this.#device;
    // 1. compute instances that go from kept GPU instances
    for (const keep of plan.keep) {
      if (keep.destroyComputeInstances.length === 0) continue;
      const gi = giById(device, keep.giId);
      for (const ci of keep.destroyComputeInstances) {
        const slices = destroyCi(gi, ci.ciId);
        this.#did(
          { kind: "ci-destroyed", giId: keep.giId, ciSlices: slices },
          `destroy CI ${ci.ciId} of GI ${keep.giId}`,
        );
      }
    }
    // 2. GPU instances that go (their compute instances first)
    for (const step of plan.destroy) {
      const gi = giById(device, step.giId);
      for (const ci of gi.computeInstances()) {
        const ciId = ci.id;
        const slices = destroyCi(gi, ciId);
        this.#did({ kind: "ci-destroyed", giId: step.giId, ciSlices: slices }, `destroy CI ${ciId} of GI ${step.giId}`);
      }
      gi.destroy();
      this.#did(
        { kind: "gi-destroyed", giId: step.giId, profileId: step.profileId, placement: step.placement },
        `destroy GI ${step.giId} (${step.profileName}@${step.placement.start})`,
      );
    }
    // 3. MIG mode
    if (plan.modeChange && plan.modeChange.pending !== plan.modeChange.to) {
      const to = plan.modeChange.to === "enabled";
      const result = device.mig.setMode(to);
      this.#did({ kind: "mode", from: plan.modeChange.from === "enabled" }, `MIG mode → ${plan.modeChange.to}`);
      if (result.current !== to) return "pending-reset";
    } else if (plan.modeChange && plan.modeChange.from !== plan.modeChange.to) {
      return "pending-reset"; // already requested; waits for a GPU reset
    }
    // 4. new GPU instances at their planned placements, with their compute instances
    for (const step of plan.create) this.#create(step);
    // 5. compute instances added to kept GPU instances
    for (const keep of plan.keep) {
      if (keep.createComputeInstances.length === 0) continue;
      const gi = giById(device, keep.giId);
      for (const ci of keep.createComputeInstances) this.#createCi(gi, keep.profileId, ci);
    }
    return "applied";
  }

  #create(step: CreateStep): void {
    const gi = this.#device.mig.createGpuInstance(step.profileId, step.placement);
    const giId = gi.id;
    this.#did({ kind: "gi-created", giId }, `create GI ${giId} (${step.profileName}@${step.placement.start})`);
    for (const ci of step.computeInstances) this.#createCi(gi, step.profileId, ci);
  }

  #createCi(gi: GpuInstance, giProfileId: number, ci: PlannedComputeInstance): void {
    const ciId = createCi(gi, ciSlicesOf(this.#geometry, giProfileId, ci.profileId));
    this.#did({ kind: "ci-created", giId: gi.id, ciId }, `create CI ${ciId} (${ci.name}) in GI ${gi.id}`);
  }

  /** Undoes recorded mutations, newest first. Recreated GPU instances get new ids, which are followed. */
  rollback(): void {
    const renamed = new Map<number, number>();
    const live = (giId: number) => renamed.get(giId) ?? giId;
    const device = this.#device;
    while (this.#undo.length > 0) {
      const u = this.#undo.pop() as Undo;
      switch (u.kind) {
        case "ci-created": {
          const gi = device.mig.gpuInstanceById(live(u.giId));
          gi?.computeInstanceById(u.ciId)?.destroy();
          break;
        }
        case "gi-created": {
          const gi = device.mig.gpuInstanceById(live(u.giId));
          if (gi) {
            for (const ci of gi.computeInstances()) ci.destroy();
            gi.destroy();
          }
          break;
        }
        case "mode":
          device.mig.setMode(u.from);
          break;
        case "gi-destroyed": {
          const gi = device.mig.createGpuInstance(u.profileId, u.placement);
          renamed.set(u.giId, gi.id);
          break;
        }
        case "ci-destroyed":
          createCi(giById(device, live(u.giId)), u.ciSlices);
          break;
      }
    }
  }
}

export function isNvmlCode(err: unknown, code: string): boolean {
  return err instanceof NvmlError && err.nvmlCode === code;
}

export function modeOf(enabled: boolean): MigMode {
  return enabled ? "enabled" : "disabled";
}
