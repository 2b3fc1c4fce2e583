// The MIG manager: reads geometry and layout from NVML, plans a spec as a minimal diff, and applies it
// per GPU transactionally under a journal. The agent's MIG RPCs and `tessera mig` both use it.
import { stringify } from "yaml";
import { TesseraError } from "../errors.js";
import type { Nvml } from "../nvml/index.js";
import { readSealedJson, sealJson, writeFileAtomic } from "../util/atomic-file.js";
import { GpuApplier, MigApplyError, type MutationHooks, SimulatedCrash } from "./apply.js";
import { exportMigDevices } from "./export.js";
import { fragmentationOf, type GpuFragmentation } from "./fragmentation.js";
import { type JournaledLayout, type JournalRecord, readJournals, removeJournal, writeJournal } from "./journal.js";
import { GeometryCache, type ManagedGpu, readHostGpus } from "./nvml-source.js";
import { type FeasibleGpuPlan, type GpuPlan, type HostPlan, planGpu, planHost } from "./plan.js";
import { renderPlan } from "./plan-render.js";
import { entryMatches, resolveMigConfig, selectMigConfig } from "./select.js";
import { renderSlotMap } from "./slot-map.js";
import { parseMigSpec } from "./spec.js";
import type { DesiredLayout, GpuGeometry, GpuLayout } from "./types.js";

export class MigInfeasibleError extends TesseraError {
  constructor(message: string) {
    super("TESSERA_MIG_INFEASIBLE", message);
  }
}

/** Apply would destroy instances that run processes or that leases hold. */
export class MigBusyError extends TesseraError {
  constructor(message: string) {
    super("TESSERA_MIG_BUSY", message);
  }
}

export interface MigManagerOptions {
  readonly nvml: Nvml;
  /** Where journals and the learned-geometry cache live. */
  readonly stateDir: string;
  /** Who holds a lease on a MIG device (by its UUID); empty when nobody. */
  readonly leaseHolders?: (migUuid: string) => readonly string[];
  readonly hooks?: MutationHooks;
}

export interface GpuMigView {
  readonly index: number;
  readonly uuid: string;
  readonly model: string;
  readonly migCapable: boolean;
  readonly layout: GpuLayout;
  readonly geometry: GpuGeometry | null;
  readonly slotMap: string;
  readonly fragmentation: GpuFragmentation | null;
}

export interface MigPlanResult {
  readonly config: string;
  readonly plan: HostPlan;
  readonly warnings: readonly string[];
  /** GPUs whose MIG geometry is learned only once MIG is on: apply enables MIG, then plans their layout. */
  readonly deferred: readonly number[];
  readonly rendered: string;
}

export type GpuOutcome = "unchanged" | "applied" | "pending-reset" | "rolled-back" | "failed";

export interface MigApplyReport {
  readonly planned: MigPlanResult;
  readonly dryRun: boolean;
  readonly results: readonly { readonly gpuIndex: number; readonly outcome: GpuOutcome; readonly message: string }[];
}

export interface RecoveryReport {
  readonly gpuIndex: number;
  readonly gpuUuid: string;
  readonly outcome: "rolled-forward" | "rolled-back" | "already-consistent" | "failed";
  readonly message: string;
}

const GEOMETRY_KIND = "tessera.mig-geometry";

function journaled(layout: GpuLayout, geometry: GpuGeometry | null): JournaledLayout {
  return {
    mode: layout.mode.current,
    instances: layout.instances.map((gi) => ({
      profileId: gi.profileId,
      start: gi.placement.start,
      ciSlices: gi.computeInstances.map((ci) => sliceCountOf(geometry, gi.profileId, ci.profileId)),
    })),
  };
}

function sliceCountOf(geometry: GpuGeometry | null, giProfileId: number, ciProfileId: number): number {
  const profile = geometry?.profiles.find((p) => p.id === giProfileId);
  return profile?.computeProfiles.find((c) => c.id === ciProfileId)?.sliceCount ?? profile?.sliceCount ?? 1;
}

/** The layout a journal names, as a desired layout with every placement pinned. */
function desiredFromJournal(layout: JournaledLayout, geometry: GpuGeometry): DesiredLayout {
  return {
    mode: layout.mode,
    instances: layout.instances.map((i) => {
      const profile = geometry.profiles.find((p) => p.id === i.profileId);
      return {
        profileId: i.profileId,
        start: i.start,
        computeProfileIds: i.ciSlices.map(
          (s) => profile?.computeProfiles.find((c) => c.sliceCount === s)?.id ?? profile?.defaultComputeProfileId ?? 0,
        ),
      };
    }),
  };
}

function label(gpu: { index: number; uuid: string }): string {
  return `GPU ${gpu.index} (${gpu.uuid})`;
}

export class MigManager {
  readonly #nvml: Nvml;
  readonly #stateDir: string;
  readonly #leaseHolders: (uuid: string) => readonly string[];
  readonly #hooks: MutationHooks;
  #cache = new GeometryCache();
  #savedCache = "";
  readonly #locks = new Map<string, Promise<unknown>>();

  constructor(options: MigManagerOptions) {
    this.#nvml = options.nvml;
    this.#stateDir = options.stateDir;
    this.#leaseHolders = options.leaseHolders ?? (() => []);
    this.#hooks = options.hooks ?? {};
  }

  get #geometryPath(): string {
    return `${this.#stateDir}/mig-geometry.json`;
  }

  /** Loads learned geometry and finishes or rolls back any apply a crash interrupted. */
  async init(): Promise<RecoveryReport[]> {
    const saved = await readSealedJson(this.#geometryPath, GEOMETRY_KIND, 1);
    if (saved !== undefined) {
      this.#cache = GeometryCache.fromJSON(saved as ReturnType<GeometryCache["toJSON"]>);
      this.#savedCache = JSON.stringify(saved);
    }
    const reports: RecoveryReport[] = [];
    for (const record of await readJournals(this.#stateDir)) reports.push(await this.#recover(record));
    await this.#saveCache();
    return reports;
  }

  /** Every GPU as NVML shows it now. */
  read(): ManagedGpu[] {
    return readHostGpus(this.#nvml, this.#cache);
  }

  show(): GpuMigView[] {
    return this.read().map((g) => ({
      index: g.index,
      uuid: g.uuid,
      model: g.model,
      migCapable: g.migCapable,
      layout: g.layout,
      geometry: g.geometry,
      slotMap: g.geometry
        ? renderSlotMap(g.geometry, g.layout.instances)
        : g.migCapable
          ? "[MIG off]"
          : "[not MIG-capable]",
      fragmentation:
        g.geometry && g.layout.mode.current === "enabled" ? fragmentationOf(g.geometry, g.layout.instances) : null,
    }));
  }

  /** The current layout as a mig-parted v1 config named "current" (mig-parted's `export`). */
  exportConfig(options: { pinned?: boolean } = {}): string {
    const entries = this.read()
      .filter((g) => g.migCapable)
      .map((g) => {
        const enabled = g.layout.mode.current === "enabled";
        return {
          devices: [g.index],
          "mig-enabled": enabled,
          ...(enabled && g.geometry
            ? { "mig-devices": exportMigDevices(g.geometry, g.layout, { pinned: options.pinned ?? false }) }
            : {}),
        };
      });
    return stringify({ version: options.pinned ? "tessera/v1" : "v1", "mig-configs": { current: entries } });
  }

  plan(specText: string, specName: string, configName: string | null): MigPlanResult {
    return this.#plan(this.read(), specText, specName, configName);
  }

  #plan(gpus: ManagedGpu[], specText: string, specName: string, configName: string | null): MigPlanResult {
    const spec = parseMigSpec(specText, specName);
    const config = selectMigConfig(spec, configName);
    // GPUs whose geometry NVML has not shown yet (MIG off, model never seen with MIG on).
    const unknown = gpus.filter((g) => g.migCapable && g.geometry === null);
    const deferred: FeasibleGpuPlan[] = [];
    for (const gpu of unknown) {
      const entry = [...config.entries].reverse().find((e) => entryMatches(e, gpu));
      if (!entry?.migEnabled) continue;
      deferred.push({
        gpu: { index: gpu.index, uuid: gpu.uuid, model: gpu.model },
        feasible: true,
        changed: gpu.layout.mode.pending !== "enabled",
        modeChange: { from: gpu.layout.mode.current, pending: gpu.layout.mode.pending, to: "enabled" },
        keep: [],
        destroy: [],
        create: [],
        busyDestroyed: 0,
        slotsBefore: "[MIG off]",
        slotsAfter: "[MIG on; layout planned once NVML shows this model's geometry]",
        largestPlaceableAfter: null,
      });
    }
    const known = gpus.filter((g) => !unknown.includes(g));
    const resolved = resolveMigConfig(spec, configName, known);
    const unknownIndexes = new Set(unknown.map((g) => g.index));
    const warnings = resolved.warnings.filter((w) => ![...unknownIndexes].some((i) => w.includes(`GPU index ${i},`)));
    const main = planHost(resolved.targets);
    const all: GpuPlan[] = [...main.gpus, ...deferred].sort((a, b) => a.gpu.index - b.gpu.index);
    const plan: HostPlan = { feasible: all.every((g) => g.feasible), gpus: all };
    const notes = deferred.map(
      (d) =>
        `GPU ${d.gpu.index}: MIG is off and ${d.gpu.model}'s MIG geometry is not known yet; apply enables MIG, then plans its layout`,
    );
    return {
      config: config.name,
      plan,
      warnings,
      deferred: deferred.map((d) => d.gpu.index),
      rendered: [renderPlan(plan), ...notes, ...warnings.map((w) => `warning: ${w}`)].join("\n"),
    };
  }

  /** Plans and, unless dryRun, applies a spec. Throws before touching anything when the plan is infeasible or busy. */
  async apply(
    specText: string,
    specName: string,
    configName: string | null,
    options: { dryRun?: boolean; force?: boolean } = {},
  ): Promise<MigApplyReport> {
    return this.#withHostLock(async () => {
      let gpus = this.read();
      let planned = this.#plan(gpus, specText, specName, configName);
      this.#assertApplicable(planned, gpus, options.force ?? false);
      if (options.dryRun) {
        return {
          planned,
          dryRun: true,
          results: planned.plan.gpus.map((g) => ({
            gpuIndex: g.gpu.index,
            outcome: "unchanged" as const,
            message: g.feasible && g.changed ? "would change (dry run)" : "no change",
          })),
        };
      }
      const results: { gpuIndex: number; outcome: GpuOutcome; message: string }[] = [];
      // Phase 1: MIG on where the geometry is still unknown, then plan again with what NVML now shows.
      if (planned.deferred.length > 0) {
        const enabled: ManagedGpu[] = [];
        for (const index of planned.deferred) {
          const gpu = gpus.find((g) => g.index === index);
          const step = planned.plan.gpus.find((p) => p.gpu.index === index);
          if (!gpu || !step?.feasible) continue;
          const outcome = await this.#applyGpu(gpu, step);
          if (outcome === "pending-reset")
            results.push({ gpuIndex: index, outcome, message: this.#pendingMessage(gpu, "enabled") });
          else enabled.push(gpu);
        }
        gpus = this.read();
        planned = this.#plan(gpus, specText, specName, configName);
        if (!planned.plan.feasible) {
          for (const gpu of enabled) gpu.device.mig.setMode(false); // nothing half-applied
          throw new MigInfeasibleError(this.#infeasibleMessage(planned.plan));
        }
      }
      for (const step of planned.plan.gpus) {
        if (results.some((r) => r.gpuIndex === step.gpu.index) || !step.feasible) continue;
        const gpu = gpus.find((g) => g.index === step.gpu.index);
        if (!gpu) continue;
        try {
          const outcome = await this.#applyGpu(gpu, step);
          results.push({
            gpuIndex: step.gpu.index,
            outcome,
            message:
              outcome === "unchanged"
                ? "already as specified"
                : outcome === "pending-reset"
                  ? this.#pendingMessage(gpu, step.modeChange?.to ?? "enabled")
                  : `kept ${step.keep.length}, destroyed ${step.destroy.length}, created ${step.create.length}`,
          });
        } catch (err) {
          if (!(err instanceof MigApplyError)) throw err;
          results.push({
            gpuIndex: step.gpu.index,
            outcome: err.rolledBack ? "rolled-back" : "failed",
            message: err.message,
          });
        }
      }
      await this.#saveCache();
      return { planned, dryRun: false, results: results.sort((a, b) => a.gpuIndex - b.gpuIndex) };
    });
  }

  /** Why a mode change is still pending, naming the processes that block it; Tessera never resets a GPU itself. */
  #pendingMessage(gpu: ManagedGpu, to: string): string {
    const pids = (gpu.device.computeProcesses() ?? []).map((p) => p.pid);
    const blockers = pids.length > 0 ? `blocked by ${pids.length} process(es) (pids ${pids.join(", ")}); ` : "";
    return `MIG mode change to ${to} is pending: ${blockers}it takes effect after a GPU reset (nvidia-smi -r -i ${gpu.index}) or reboot; the layout follows on the next apply`;
  }

  #infeasibleMessage(plan: HostPlan): string {
    return plan.gpus
      .filter((g) => !g.feasible)
      .map((g) => `GPU ${g.gpu.index} (${g.gpu.model}): ${g.feasible ? "" : g.reason}`)
      .join("; ");
  }

  #assertApplicable(planned: MigPlanResult, gpus: readonly ManagedGpu[], force: boolean): void {
    if (!planned.plan.feasible)
      throw new MigInfeasibleError(`nothing was changed: ${this.#infeasibleMessage(planned.plan)}`);
    if (force) return;
    const refusals: string[] = [];
    for (const step of planned.plan.gpus) {
      if (!step.feasible) continue;
      const gpu = gpus.find((g) => g.index === step.gpu.index);
      const profileName = (id: number) => gpu?.geometry?.profiles.find((p) => p.id === id)?.name ?? `profile ${id}`;
      const doomed = [
        ...step.destroy.flatMap((d) =>
          d.computeInstances.map((ci) => ({ ci, what: `${d.profileName}@${d.placement.start}` })),
        ),
        ...step.keep.flatMap((k) =>
          k.destroyComputeInstances.map((ci) => ({
            ci,
            what: `${ci.name} in ${profileName(k.profileId)}@${k.placement.start}`,
          })),
        ),
      ];
      for (const { ci, what } of doomed) {
        const holders = ci.uuid ? this.#leaseHolders(ci.uuid) : [];
        const why: string[] = [];
        if (ci.processIds.length > 0)
          why.push(
            `${ci.processIds.length} process${ci.processIds.length > 1 ? "es" : ""} running (pids ${ci.processIds.join(", ")})`,
          );
        if (holders.length > 0) why.push(`leased by ${holders.join(", ")}`);
        if (why.length > 0) refusals.push(`${label(step.gpu)}: destroying ${what} refused: ${why.join("; ")}`);
      }
    }
    if (refusals.length > 0) throw new MigBusyError(`${refusals.join("\n")}\npass --force to proceed`);
  }

  /** One GPU, serialized per GPU, journaled from before the first mutation until the end. */
  async #applyGpu(gpu: ManagedGpu, step: FeasibleGpuPlan): Promise<"unchanged" | "applied" | "pending-reset"> {
    if (!step.changed) return "unchanged";
    return this.#withGpuLock(gpu.uuid, async () => {
      const record: JournalRecord = {
        gpuIndex: gpu.index,
        gpuUuid: gpu.uuid,
        startedAt: new Date().toISOString(),
        before: journaled(gpu.layout, gpu.geometry),
        target: this.#targetOf(gpu, step),
      };
      await writeJournal(this.#stateDir, record);
      const applier = new GpuApplier(gpu.device, gpu.geometry, this.#hooks);
      try {
        const outcome = applier.run(step);
        await removeJournal(this.#stateDir, gpu.uuid);
        return outcome;
      } catch (err) {
        if (err instanceof SimulatedCrash) throw err; // the journal stays, as after a real crash
        if (err instanceof MigApplyError && err.rolledBack) await removeJournal(this.#stateDir, gpu.uuid);
        throw err;
      }
    });
  }

  #targetOf(gpu: ManagedGpu, step: FeasibleGpuPlan): JournaledLayout {
    const slices = (giProfileId: number, ciProfileId: number) => sliceCountOf(gpu.geometry, giProfileId, ciProfileId);
    return {
      mode: step.modeChange?.to ?? gpu.layout.mode.current,
      instances: [
        ...step.keep.map((k) => ({
          profileId: k.profileId,
          start: k.placement.start,
          ciSlices: [...k.keepComputeInstances, ...k.createComputeInstances].map((ci) =>
            slices(k.profileId, ci.profileId),
          ),
        })),
        ...step.create.map((c) => ({
          profileId: c.profileId,
          start: c.placement.start,
          ciSlices: c.computeInstances.map((ci) => slices(c.profileId, ci.profileId)),
        })),
      ],
    };
  }

  /** After a crash: converge on the journal's target; if that cannot be done, go back to where it started. */
  async #recover(record: JournalRecord): Promise<RecoveryReport> {
    const gpu = this.read().find((g) => g.uuid === record.gpuUuid);
    const base = { gpuIndex: record.gpuIndex, gpuUuid: record.gpuUuid };
    if (!gpu) return { ...base, outcome: "failed", message: `${record.gpuUuid} is not present; journal kept` };
    const attempt = async (target: JournaledLayout): Promise<boolean> => {
      const current = this.read().find((g) => g.uuid === record.gpuUuid);
      if (!current?.geometry) return false;
      const plan = planGpu({
        gpu: { index: current.index, uuid: current.uuid, model: current.model },
        geometry: current.geometry,
        layout: current.layout,
        desired: desiredFromJournal(target, current.geometry),
      });
      if (!plan.feasible) return false;
      try {
        new GpuApplier(current.device, current.geometry, this.#hooks).run(plan);
        return true;
      } catch (err) {
        if (err instanceof MigApplyError) return false;
        throw err;
      }
    };
    return this.#withGpuLock(gpu.uuid, async () => {
      let outcome: RecoveryReport["outcome"];
      const before = JSON.stringify(gpu.layout.instances.map((i) => [i.profileId, i.placement.start]));
      if (await attempt(record.target)) {
        const after = JSON.stringify(
          this.read()
            .find((g) => g.uuid === record.gpuUuid)
            ?.layout.instances.map((i) => [i.profileId, i.placement.start]),
        );
        outcome = after === before ? "already-consistent" : "rolled-forward";
      } else if (await attempt(record.before)) {
        outcome = "rolled-back";
      } else {
        return {
          ...base,
          outcome: "failed",
          message: `${label(gpu)}: could not finish or roll back the interrupted apply; journal kept`,
        };
      }
      await removeJournal(this.#stateDir, record.gpuUuid);
      return { ...base, outcome, message: `${label(gpu)}: interrupted apply from ${record.startedAt} ${outcome}` };
    });
  }

  async #withGpuLock<T>(uuid: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.#locks.get(uuid) ?? Promise.resolve();
    const run = prev.then(fn, fn);
    this.#locks.set(
      uuid,
      run.catch(() => undefined),
    );
    return run;
  }

  async #withHostLock<T>(fn: () => Promise<T>): Promise<T> {
    return this.#withGpuLock("*host*", fn);
  }

  async #saveCache(): Promise<void> {
    const json = this.#cache.toJSON();
    const text = JSON.stringify(json);
    if (text === this.#savedCache) return;
    this.#savedCache = text;
    await writeFileAtomic(this.#geometryPath, sealJson(GEOMETRY_KIND, 1, json));
  }
}
