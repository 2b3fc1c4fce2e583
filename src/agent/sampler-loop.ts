// The sampling schedule, on the NVML thread: a read-only NVML handle swept at a fixed cadence
// (due at origin + k·interval, so a slow sweep does not push the later ones back), the fabric read
// on its own slower cadence, and counter history saved now and then. Each sweep goes to the main
// thread packed (sweep-pack.ts).
import { join } from "node:path";
import { errorMessage } from "../errors.js";
import { loadSnapshots, saveSnapshots } from "../fabric/snapshot-store.js";
import type { Nvml } from "../nvml/index.js";
import { FabricSampler } from "../telemetry/fabric-sampler.js";
import { NvmlSampler } from "../telemetry/sampler.js";
import { type PackedSweep, packSweep } from "../telemetry/sweep-pack.js";
import type { SweepResult } from "../telemetry/sweep-types.js";
import type { LogLevel } from "./worker-protocol.js";

export interface SamplingSettings {
  readonly intervalMs: number;
  readonly fabric:
    | {
        readonly sysfsRoot: string;
        readonly procRoot: string;
        readonly expectFile: string | undefined;
        readonly intervalMs: number;
        /** Where counter history is kept between runs; undefined keeps it in memory only. */
        readonly stateDir: string | undefined;
      }
    | undefined;
}

export interface SamplerLoop {
  setInterval(ms: number): number;
  refreshLayouts(): void;
  stop(): Promise<void>;
}

const FABRIC_SAVE_MS = 60_000;

export async function startSamplerLoop(
  nvml: Nvml,
  settings: SamplingSettings,
  simulatorPreset: string | undefined,
  emit: (packed: PackedSweep) => void,
  log: (level: LogLevel, fields: Record<string, unknown>, msg: string) => void,
): Promise<SamplerLoop> {
  const sampler = new NvmlSampler(nvml, simulatorPreset === undefined ? {} : { simulatorPreset });
  let fabric: FabricSampler | undefined;
  const fabricDir = settings.fabric?.stateDir ? join(settings.fabric.stateDir, "fabric") : undefined;
  if (settings.fabric) {
    // Loaded only when used: YAML parsing is not needed on most hosts.
    const expectations = settings.fabric.expectFile
      ? await (await import("../fabric/expect-config.js")).loadExpectedFabric(settings.fabric.expectFile)
      : undefined;
    const restored = fabricDir ? await loadSnapshots(fabricDir) : undefined;
    if (restored?.status === "corrupt")
      log("warn", { path: restored.path, reason: restored.reason }, "fabric counter snapshot ignored");
    fabric = new FabricSampler(
      {
        sysfsRoot: settings.fabric.sysfsRoot,
        procRoot: settings.fabric.procRoot,
        ...(expectations ? { expectations } : {}),
      },
      restored?.status === "ok" ? restored.state : undefined,
    );
  }

  let intervalMs = settings.intervalMs;
  let origin = Date.now();
  let tick = 0;
  let timer: NodeJS.Timeout | undefined;
  let lastFabricMs = Number.NEGATIVE_INFINITY;
  let lastSaveMs = Date.now();
  let stopped = false;
  let previous: SweepResult | undefined;

  const saveFabric = async () => {
    const state = fabric?.state;
    if (!fabricDir || !state) return;
    try {
      await saveSnapshots(fabricDir, state, Date.now());
    } catch (err) {
      log("warn", { err: errorMessage(err) }, "cannot save fabric counter snapshot");
    }
  };

  const run = () => {
    if (stopped) return;
    let result = sampler.sweep(origin + tick * intervalMs);
    if (fabric && result.startedAtMs - lastFabricMs >= (settings.fabric?.intervalMs ?? 0)) {
      lastFabricMs = result.startedAtMs;
      const gpus = result.gpus
        .filter((g) => g.identity.pciBusId !== "")
        .map((g) => ({ index: g.identity.index, uuid: g.identity.uuid, pciBusId: g.identity.pciBusId }));
      result = { ...result, fabric: fabric.sweep(gpus) };
    }
    emit(packSweep(result, previous));
    previous = result;
    if (fabricDir && Date.now() - lastSaveMs >= FABRIC_SAVE_MS) {
      lastSaveMs = Date.now();
      void saveFabric();
    }
    schedule();
  };

  // Sweeps that could not start on time are skipped rather than bunched.
  const schedule = () => {
    const now = Date.now();
    tick = Math.max(tick + 1, Math.ceil((now - origin) / intervalMs));
    timer = setTimeout(run, Math.max(0, origin + tick * intervalMs - now));
  };

  timer = setTimeout(run, 0);
  return {
    setInterval(ms) {
      if (ms !== intervalMs) {
        intervalMs = ms;
        clearTimeout(timer);
        origin = Date.now();
        tick = 0;
        timer = setTimeout(run, 0);
      }
      return intervalMs;
    },
    refreshLayouts() {
      sampler.refreshLayouts();
    },
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await saveFabric();
    },
  };
}
