// The NVML thread: everything that calls NVML runs here, never on the main thread, so a hung NVML
// call can stall this thread but never the API, the watch streams or /metrics (the main thread keeps
// serving the last snapshot and says it is stale). It holds two NVML handles: a read-only one for
// the sampler (sampler-loop.ts), and one that may mutate (unless the agent is read-only) for the MIG
// manager (recovery at start, plan, apply) and the GPU instances of dynamic leases. It also waits
// for NVML events (XID, ECC, MIG changes). Requests from the main thread run one at a time, between
// sweeps; the main thread bounds each with a timeout.
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { workerData } from "node:worker_threads";
import { errorMessage, TesseraError } from "../errors.js";
import { readJournals } from "../mig/journal.js";
import type { MigManager } from "../mig/manager.js";
import { readLayout } from "../mig/nvml-source.js";
import { type Device, type EventSet, type EventTypeName, type Nvml, NvmlError, openNvml } from "../nvml/index.js";
import { SimControl } from "../sim/control.js";
import { type SamplerLoop, type SamplingSettings, startSamplerLoop } from "./sampler-loop.js";
import { log, post, serve } from "./worker-runtime.js";

export interface NvmlWorkerData {
  readonly libraryPath: string | undefined;
  readonly readOnly: boolean;
  readonly stateDir: string;
  /** Wait for NVML events (XID, ECC, MIG config changes). */
  readonly events: boolean;
  readonly sampling: SamplingSettings;
}

export interface CreateInstanceArgs {
  readonly gpuUuid: string;
  readonly profileId: number;
  readonly placement: { readonly start: number; readonly size: number };
}

export interface CreatedInstance {
  readonly gpuInstanceId: number;
  readonly computeInstanceId: number;
  readonly migUuid: string;
  readonly placement: { readonly start: number; readonly size: number };
}

export interface DestroyInstanceArgs {
  readonly gpuUuid: string;
  readonly gpuInstanceId: number;
  /** Destroy only when the instance still has this profile at this placement (ids are reused). */
  readonly profileId: number;
  readonly placementStart: number;
}

export type DestroyOutcome = { readonly destroyed: true } | { readonly destroyed: false; readonly reason: string };

export interface InstanceListing {
  readonly gpuUuid: string;
  readonly instances: readonly {
    readonly gpuInstanceId: number;
    readonly profileId: number;
    readonly placement: { readonly start: number; readonly size: number };
    readonly migUuids: readonly string[];
  }[];
}

export interface MigApplyArgs {
  readonly specYaml: string;
  readonly specName: string;
  readonly configName: string | null;
  readonly dryRun: boolean;
  readonly force: boolean;
  /** MIG device UUID → workload ids holding it. */
  readonly leaseHolders: Readonly<Record<string, readonly string[]>>;
}

const EVENT_TYPES_WATCHED: EventTypeName[] = ["xidCriticalError", "singleBitEccError", "doubleBitEccError"];
/**
 * Events are checked without blocking this often. A blocking nvmlEventSetWait costs nothing on
 * NVIDIA's driver but polls every 5 ms inside the simulator (a third of the agent's CPU budget in
 * bench/agent-overhead.ts); a non-blocking check is cheap on both, and an XID reaches the event
 * log at most this late, well inside one sampling interval.
 */
const EVENT_POLL_MS = 500;

class InstanceNotFoundError extends TesseraError {
  constructor(message: string) {
    super("TESSERA_DEVICE_NOT_FOUND", message);
  }
}

function gpu(nvml: Nvml, uuid: string): Device {
  try {
    return nvml.deviceByUuid(uuid);
  } catch (err) {
    if (err instanceof NvmlError && err.nvmlCode === "NVML_ERROR_NOT_FOUND")
      throw new InstanceNotFoundError(`no GPU ${uuid} on this host`);
    throw err;
  }
}

function createInstance(nvml: Nvml, args: CreateInstanceArgs): CreatedInstance {
  const device = gpu(nvml, args.gpuUuid);
  const gi = device.mig.createGpuInstance(args.profileId, args.placement);
  try {
    // One compute instance spanning the whole GPU instance, as `nvidia-smi mig -cgi … -C` makes.
    const full = gi.computeInstanceProfiles().reduce((a, b) => (b.sliceCount > a.sliceCount ? b : a));
    const ci = gi.createComputeInstance(full.id);
    const giId = gi.id;
    const ciId = ci.id;
    const mig = device.migDevices().find((m) => m.gpuInstanceId() === giId && m.computeInstanceId() === ciId);
    if (!mig) throw new TesseraError("TESSERA_MIG_STATE", `GPU instance ${giId}: its MIG device did not appear`);
    return { gpuInstanceId: giId, computeInstanceId: ciId, migUuid: mig.uuid(), placement: gi.info().placement };
  } catch (err) {
    // Nothing half-made stays behind; the caller's intent record covers a crash right here.
    for (const ci of gi.computeInstances()) ci.destroy();
    gi.destroy();
    throw err;
  }
}

function destroyInstance(nvml: Nvml, args: DestroyInstanceArgs): DestroyOutcome {
  let device: Device;
  try {
    device = gpu(nvml, args.gpuUuid);
  } catch (err) {
    if (err instanceof InstanceNotFoundError) return { destroyed: false, reason: err.message };
    throw err;
  }
  const gi = device.mig.gpuInstanceById(args.gpuInstanceId);
  if (!gi) return { destroyed: false, reason: `GPU instance ${args.gpuInstanceId} no longer exists` };
  const info = gi.info();
  if (info.profileId !== args.profileId || info.placement.start !== args.placementStart) {
    return {
      destroyed: false,
      reason: `GPU instance ${args.gpuInstanceId} is now profile ${info.profileId} at ${info.placement.start}, not the one created`,
    };
  }
  for (const ci of gi.computeInstances()) ci.destroy();
  gi.destroy();
  return { destroyed: true };
}

function listInstances(nvml: Nvml, gpuUuid: string): InstanceListing {
  const device = gpu(nvml, gpuUuid);
  const mode = device.mig.mode();
  if (!mode?.current) return { gpuUuid, instances: [] };
  return {
    gpuUuid,
    instances: readLayout(device).map((gi) => ({
      gpuInstanceId: gi.giId,
      profileId: gi.profileId,
      placement: gi.placement,
      migUuids: gi.computeInstances.map((ci) => ci.uuid),
    })),
  };
}

async function watchEvents(nvml: Nvml, signal: AbortSignal): Promise<void> {
  let set: EventSet;
  try {
    set = nvml.createEventSet();
  } catch (err) {
    log("warn", { err: errorMessage(err) }, "NVML events unavailable: XID and ECC events will not be reported");
    return;
  }
  const uuids = new Map<number, string>();
  for (const slot of nvml.deviceSlots()) {
    if (!("device" in slot)) continue;
    try {
      const registered = set.register(slot.device, [...EVENT_TYPES_WATCHED, "migConfigChange"]);
      if (!registered) set.register(slot.device, EVENT_TYPES_WATCHED);
      uuids.set(slot.index, slot.device.uuid());
    } catch (err) {
      log("warn", { gpu: slot.index, err: errorMessage(err) }, "cannot register for NVML events");
    }
  }
  try {
    while (!signal.aborted) {
      let event: Awaited<ReturnType<EventSet["wait"]>>;
      try {
        event = await set.wait(0);
      } catch (err) {
        log("warn", { err: errorMessage(err) }, "NVML event wait failed");
        event = undefined;
      }
      if (!event) {
        // Nothing pending: look again later (pending events are drained back to back).
        try {
          await sleep(EVENT_POLL_MS, undefined, { signal });
        } catch {
          break; // aborted: the thread is stopping
        }
        continue;
      }
      const index = event.device?.index;
      post({
        kind: "nvml-event",
        event: {
          atMs: Date.now(),
          gpuIndex: index,
          gpuUuid: index === undefined ? "" : (uuids.get(index) ?? ""),
          typeNames: event.typeNames.map(String),
          data: event.data.toString(),
          gpuInstanceId: event.gpuInstanceId,
          computeInstanceId: event.computeInstanceId,
        },
      });
    }
  } finally {
    await set.free();
  }
}

async function main(data: NvmlWorkerData): Promise<void> {
  const library = data.libraryPath ? { libraryPath: data.libraryPath } : {};
  const nvml = await openNvml({ ...library, readOnly: data.readOnly });
  // The sampler's own handle cannot mutate, whatever the agent's mode.
  const readOnlyNvml = await openNvml({ ...library, readOnly: true });
  const preset = nvml.simulated ? SimControl.open(nvml.libraryPath).preset() : undefined;
  let holders: Readonly<Record<string, readonly string[]>> = {};
  const migDir = join(data.stateDir, "mig");
  // The MIG manager (and the spec parser and YAML it brings) is loaded when first needed: at start
  // only when a journal says an apply was interrupted, else at the first plan or apply.
  let manager: Promise<MigManager> | undefined;
  const getManager = (): Promise<MigManager> => {
    manager ??= import("../mig/manager.js").then(async ({ MigManager }) => {
      const m = new MigManager({
        nvml,
        stateDir: migDir,
        leaseHolders: (uuid) => holders[uuid] ?? [],
        hooks: { log: (fields, message) => log("info", fields, message) },
      });
      // A read-only agent can neither finish nor undo an apply; its journals wait for a writable start.
      if (!data.readOnly) recovered = await m.init();
      return m;
    });
    return manager;
  };
  let recovered: Awaited<ReturnType<MigManager["init"]>> = [];
  const stop = new AbortController();
  let events: Promise<void> = Promise.resolve();
  let sampling: SamplerLoop | undefined;

  serve(
    {
      // MIG recovery runs before anything else: a crash mid-apply is finished or undone, then the
      // sampler starts and event waiting begins.
      init: async () => {
        const interrupted = data.readOnly ? [] : await readJournals(migDir);
        if (interrupted.length > 0) await getManager();
        const recovery = recovered;
        sampling ??= await startSamplerLoop(
          readOnlyNvml,
          data.sampling,
          preset,
          (packed) => post({ kind: "sweep", packed }),
          log,
        );
        if (data.events) events = watchEvents(nvml, stop.signal);
        return recovery;
      },
      "set-interval": (args) => sampling?.setInterval((args as { intervalMs: number }).intervalMs),
      "refresh-layouts": () => {
        sampling?.refreshLayouts();
        return true;
      },
      "create-instance": (args) => createInstance(nvml, args as CreateInstanceArgs),
      "destroy-instance": (args) => destroyInstance(nvml, args as DestroyInstanceArgs),
      "list-instances": (args) => listInstances(nvml, (args as { gpuUuid: string }).gpuUuid),
      "mig-plan": async (args) => {
        const a = args as MigApplyArgs;
        return (await getManager()).plan(a.specYaml, a.specName, a.configName);
      },
      "mig-apply": async (args) => {
        const a = args as MigApplyArgs;
        holders = a.leaseHolders;
        try {
          return await (await getManager()).apply(a.specYaml, a.specName, a.configName, {
            dryRun: a.dryRun,
            force: a.force,
          });
        } finally {
          holders = {};
        }
      },
    },
    async () => {
      stop.abort();
      await sampling?.stop();
      await events;
      readOnlyNvml.shutdown();
      nvml.shutdown();
    },
  );
}

main(workerData as NvmlWorkerData).catch((err: unknown) => {
  log("error", { err: errorMessage(err) }, "NVML thread failed to start");
  // The main thread sees the worker exit and reports it.
  setTimeout(() => process.exit(1), 50);
});
