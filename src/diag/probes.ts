// Gathering NVML facts, one family at a time. Each family reads every GPU with the typed binding
// and reports the NVML call it is about to make (`step`), so whoever waits on it can name the call
// that hung. Runs inside the probe host's threads (probe-worker.ts) or in-process (sources.ts).
import { setTimeout as sleep } from "node:timers/promises";
import { TesseraError } from "../errors.js";
import { CLOCK_EVENT_REASONS, type ClockEventReason, type Device, type Nvml, NvmlError } from "../nvml/index.js";
import type {
  CallTiming,
  ClockFacts,
  CounterReading,
  EventWindowFacts,
  GpuIdentity,
  GpuProbe,
  MemoryFacts,
  MigFacts,
  PcieFacts,
  ProbeError,
  ProbeFamilies,
  ProbeFamily,
  ProbeParams,
  SystemFacts,
  ThrottleResidencyFacts,
  XidEventFact,
} from "./facts.js";

/** Called before each NVML call (or group of calls) with its name and the GPU it is about. */
export type StepReporter = (operation: string, gpu?: number) => void;

export interface ProbeRunContext {
  readonly step: StepReporter;
  /** How long opening NVML took where this probe runs (reported by the system family). */
  readonly initMs: number;
  readonly signal?: AbortSignal;
  /** Wall clock in ms. */
  readonly clock?: () => number;
}

export async function runProbe<K extends ProbeFamily>(
  nvml: Nvml,
  family: K,
  params: ProbeParams,
  ctx: ProbeRunContext,
): Promise<ProbeFamilies[K]> {
  const run = PROBES[family] as (nvml: Nvml, params: ProbeParams, ctx: ProbeRunContext) => Promise<ProbeFamilies[K]>;
  return run(nvml, params, ctx);
}

const PROBES: { [K in ProbeFamily]: (nvml: Nvml, p: ProbeParams, ctx: ProbeRunContext) => Promise<ProbeFamilies[K]> } =
  {
    system: async (nvml, _p, ctx) => probeSystem(nvml, ctx),
    memory: async (nvml, _p, ctx) => perGpu(nvml, ctx.step, (d, i) => readMemory(d, i, ctx.step)),
    clocks: async (nvml, _p, ctx) => perGpu(nvml, ctx.step, (d, i) => readClocks(nvml, d, i, ctx.step)),
    pcie: async (nvml, _p, ctx) => perGpu(nvml, ctx.step, (d, i) => readPcie(d, i, ctx.step)),
    mig: async (nvml, _p, ctx) => perGpu(nvml, ctx.step, (d, i) => readMig(d, i, ctx.step)),
    "clocks-window": probeThrottleResidency,
    "counters-window": probeCounterWindow,
    "events-window": probeEventWindow,
  };

export function toProbeError(err: unknown): ProbeError {
  if (err instanceof NvmlError) {
    return { message: err.message, code: err.code, nvmlCode: err.nvmlCode, operation: err.operation };
  }
  if (err instanceof TesseraError) return { message: err.message, code: err.code };
  return { message: err instanceof Error ? err.message : String(err) };
}

/** Reads every GPU; a GPU that fails (lost, unreadable) gets its error and the others go on. */
function perGpu<T>(nvml: Nvml, step: StepReporter, read: (device: Device, index: number) => T): GpuProbe<T>[] {
  step("nvmlDeviceGetCount_v2");
  const count = nvml.deviceCount();
  const out: GpuProbe<T>[] = [];
  for (let index = 0; index < count; index++) {
    try {
      step("nvmlDeviceGetHandleByIndex_v2", index);
      const device = nvml.device(index);
      out.push({ index, facts: read(device, index) });
    } catch (err) {
      if (!(err instanceof NvmlError)) throw err;
      out.push({ index, error: toProbeError(err) });
    }
  }
  return out;
}

// ── system ───────────────────────────────────────────────────────────────

function probeSystem(nvml: Nvml, ctx: ProbeRunContext): SystemFacts {
  const { step } = ctx;
  const versionErrors: ProbeError[] = [];
  const version = <T>(operation: string, read: () => T): T | undefined => {
    step(operation);
    try {
      return read();
    } catch (err) {
      if (!(err instanceof NvmlError)) throw err;
      versionErrors.push(toProbeError(err));
      return undefined;
    }
  };
  const driverVersion = version("nvmlSystemGetDriverVersion", () => nvml.driverVersion());
  const nvmlVersion = version("nvmlSystemGetNVMLVersion", () => nvml.nvmlVersion());
  const cuda = version("nvmlSystemGetCudaDriverVersion_v2", () => nvml.cudaDriverVersion());
  step("nvmlDeviceGetCount_v2");
  const deviceCount = nvml.deviceCount();
  const gpus: GpuIdentity[] = [];
  for (let index = 0; index < deviceCount; index++) gpus.push(identify(nvml, index, step));
  return {
    libraryPath: nvml.libraryPath,
    simulated: nvml.simulated,
    initMs: ctx.initMs,
    missingSymbols: nvml.features.missingSymbols,
    driverVersion,
    nvmlVersion,
    cudaDriverVersion: cuda ? { major: cuda.major, minor: cuda.minor } : undefined,
    versionErrors,
    deviceCount,
    gpus,
  };
}

function identify(nvml: Nvml, index: number, step: StepReporter): GpuIdentity {
  let slowest: CallTiming | undefined;
  const timed = <T>(operation: string, read: () => T): T => {
    step(operation, index);
    const started = performance.now();
    try {
      return read();
    } finally {
      const ms = performance.now() - started;
      if (!slowest || ms > slowest.ms) slowest = { operation, ms };
    }
  };
  const identity: {
    -readonly [K in keyof GpuIdentity]: GpuIdentity[K];
  } = {
    index,
    uuid: undefined,
    name: undefined,
    pciBusId: undefined,
    architecture: undefined,
    migMode: undefined,
    error: undefined,
    slowestCall: undefined,
  };
  try {
    const device = timed("nvmlDeviceGetHandleByIndex_v2", () => nvml.device(index));
    identity.uuid = timed("nvmlDeviceGetUUID", () => device.uuid());
    identity.name = timed("nvmlDeviceGetName", () => device.name());
    identity.pciBusId = timed("nvmlDeviceGetPciInfo_v3", () => device.pciInfo().busId);
    identity.architecture = timed("nvmlDeviceGetArchitecture", () => device.architecture()?.name);
    identity.migMode = timed("nvmlDeviceGetMigMode", () => device.mig.mode());
  } catch (err) {
    if (!(err instanceof NvmlError)) throw err;
    identity.error = toProbeError(err);
  }
  identity.slowestCall = slowest;
  return identity;
}

// ── per-GPU snapshots ────────────────────────────────────────────────────

function readMemory(d: Device, i: number, step: StepReporter): MemoryFacts {
  step("nvmlDeviceGetEccMode", i);
  const eccMode = d.eccMode();
  step("nvmlDeviceGetTotalEccErrors", i);
  const ecc = d.eccErrors();
  step("nvmlDeviceGetMigMode", i);
  const migEnabled = d.mig.mode()?.current;
  step("nvmlDeviceGetRemappedRows", i);
  const remappedRows = d.remappedRows();
  step("nvmlDeviceGetRetiredPages", i);
  const retiredPages = d.retiredPages();
  return { eccMode, ecc, remappedRows, retiredPages, migEnabled };
}

function readClocks(nvml: Nvml, d: Device, i: number, step: StepReporter): ClockFacts {
  step(nvml.features.clockEventReasons ?? "nvmlDeviceGetCurrentClocksEventReasons", i);
  const reasons = d.clockEventReasons()?.names;
  step(nvml.features.temperature ?? "nvmlDeviceGetTemperatureV", i);
  const temperatureC = d.temperatureCelsius();
  step("nvmlDeviceGetTemperatureThreshold", i);
  const slowdownC = d.temperatureThresholds().slowdownCelsius;
  step("nvmlDeviceGetPowerUsage", i);
  const powerMilliwatts = d.powerUsageMilliwatts();
  step("nvmlDeviceGetEnforcedPowerLimit", i);
  const powerLimitMilliwatts = d.enforcedPowerLimitMilliwatts();
  return { reasons, temperatureC, slowdownC, powerMilliwatts, powerLimitMilliwatts };
}

const PCIE_LINK_CALLS = "nvmlDeviceGet{Curr,Max}PcieLink{Generation,Width}";

function readPcie(d: Device, i: number, step: StepReporter): PcieFacts {
  step(PCIE_LINK_CALLS, i);
  const link = d.pcieLink();
  step("nvmlDeviceGetFieldValues(NVML_FI_DEV_PCIE_REPLAY_COUNTER)", i);
  const replays = d.pcieReplayCounter();
  step("nvmlDeviceGetUtilizationRates", i);
  const utilizationPercent = d.utilization()?.gpuPercent;
  return { link, replays, utilizationPercent, processCount: countProcesses(d, i, step) };
}

/** Distinct compute processes on the GPU and on each of its MIG devices. */
function countProcesses(d: Device, i: number, step: StepReporter): number | undefined {
  step("nvmlDeviceGetComputeRunningProcesses_v3", i);
  const own = d.computeProcesses();
  step("nvmlDeviceGetMigDeviceHandleByIndex", i);
  const migDevices = d.migDevices();
  const pids = new Set((own ?? []).map((p) => p.pid));
  let known = own !== undefined;
  for (const m of migDevices) {
    step("nvmlDeviceGetComputeRunningProcesses_v3", i);
    const procs = m.computeProcesses();
    if (procs === undefined) continue;
    known = true;
    for (const p of procs) pids.add(p.pid);
  }
  return known ? pids.size : undefined;
}

function readMig(d: Device, i: number, step: StepReporter): MigFacts {
  step("nvmlDeviceGetUUID", i);
  const uuid = d.uuid();
  step("nvmlDeviceGetArchitecture", i);
  const architecture = d.architecture()?.name;
  step("nvmlDeviceGetMigMode", i);
  const mode = d.mig.mode();
  if (!mode?.current) return { uuid, architecture, mode, gpuInstances: [], migDevices: [] };
  step("nvmlDeviceGetGpuInstanceProfileInfoV", i);
  const names = new Map(d.mig.gpuInstanceProfiles().map((p) => [p.id, p.name?.replace(/^MIG /, "")]));
  step("nvmlDeviceGetGpuInstances", i);
  const gpuInstances = d.mig.gpuInstances().map((gi) => {
    step("nvmlGpuInstanceGetInfo", i);
    const info = gi.info();
    step("nvmlGpuInstanceGetComputeInstances", i);
    const computeInstanceIds = gi
      .computeInstances()
      .map((ci) => ci.id)
      .sort((a, b) => a - b);
    return {
      id: info.id,
      profileId: info.profileId,
      profileName: names.get(info.profileId),
      placement: info.placement,
      computeInstanceIds,
    };
  });
  step("nvmlDeviceGetMigDeviceHandleByIndex", i);
  const migDevices = d.migDevices().map((m) => {
    step("nvmlDeviceGetUUID", i);
    const migUuid = m.uuid();
    step("nvmlDeviceGetGpuInstanceId", i);
    const gpuInstanceId = m.gpuInstanceId();
    step("nvmlDeviceGetComputeInstanceId", i);
    const computeInstanceId = m.computeInstanceId();
    step("nvmlDeviceGetComputeRunningProcesses_v3", i);
    const processCount = m.computeProcesses()?.length;
    return { uuid: migUuid, gpuInstanceId, computeInstanceId, processCount };
  });
  return {
    uuid,
    architecture,
    mode,
    gpuInstances: gpuInstances.sort((a, b) => a.id - b.id),
    migDevices,
  };
}

// ── windowed families (standard level) ───────────────────────────────────

const REASON_NAMES = Object.keys(CLOCK_EVENT_REASONS) as ClockEventReason[];

/** Samples of one GPU so far, and how many had each reason set. */
interface Tally {
  samples: number;
  hits: Map<ClockEventReason, number>;
  error?: ProbeError;
}

async function probeThrottleResidency(
  nvml: Nvml,
  params: ProbeParams,
  ctx: ProbeRunContext,
): Promise<GpuProbe<ThrottleResidencyFacts>[]> {
  const clock = ctx.clock ?? Date.now;
  const deadline = clock() + params.windowMs;
  const counts = new Map<number, Tally>();
  const intervalMs = Math.max(1, params.sampleIntervalMs);
  // Samples at the start, every interval, and at the end of the window.
  for (;;) {
    const sample = perGpu(nvml, ctx.step, (d, i) => {
      ctx.step(nvml.features.clockEventReasons ?? "nvmlDeviceGetCurrentClocksEventReasons", i);
      return d.clockEventReasons()?.names;
    });
    for (const g of sample) {
      const c: Tally = counts.get(g.index) ?? { samples: 0, hits: new Map() };
      counts.set(g.index, c);
      if (g.error) {
        c.error = g.error;
        continue;
      }
      if (g.facts === undefined) continue;
      c.samples++;
      for (const name of g.facts) {
        if (REASON_NAMES.includes(name as ClockEventReason)) {
          const reason = name as ClockEventReason;
          c.hits.set(reason, (c.hits.get(reason) ?? 0) + 1);
        }
      }
    }
    const left = deadline - clock();
    if (left <= 0) break;
    await sleep(Math.min(intervalMs, left), undefined, ctx.signal ? { signal: ctx.signal } : undefined);
  }
  return [...counts].map(([index, c]): GpuProbe<ThrottleResidencyFacts> => {
    if (c.samples === 0 && c.error) return { index, error: c.error };
    const residency: Partial<Record<ClockEventReason, number>> = {};
    for (const [reason, n] of c.hits) residency[reason] = n / c.samples;
    return { index, facts: { samples: c.samples, residency } };
  });
}

async function probeCounterWindow(nvml: Nvml, params: ProbeParams, ctx: ProbeRunContext) {
  const clock = ctx.clock ?? Date.now;
  const read = () =>
    perGpu(nvml, ctx.step, (d, i): CounterReading => {
      ctx.step("nvmlDeviceGetTotalEccErrors", i);
      const ecc = d.eccErrors();
      ctx.step("nvmlDeviceGetFieldValues(NVML_FI_DEV_PCIE_REPLAY_COUNTER)", i);
      const replays = d.pcieReplayCounter();
      ctx.step(PCIE_LINK_CALLS, i);
      return { atMs: clock(), ecc, replays, link: d.pcieLink() };
    });
  const start = read();
  await sleep(params.windowMs, undefined, ctx.signal ? { signal: ctx.signal } : undefined);
  const end = new Map(read().map((g) => [g.index, g]));
  return start.map((s) => {
    const e = end.get(s.index);
    if (s.error) return s;
    if (!e || e.error) return { index: s.index, error: e?.error ?? { message: "GPU disappeared during the window" } };
    return { index: s.index, facts: { start: s.facts, end: e.facts } };
  });
}

async function probeEventWindow(nvml: Nvml, params: ProbeParams, ctx: ProbeRunContext): Promise<EventWindowFacts> {
  const clock = ctx.clock ?? Date.now;
  ctx.step("nvmlEventSetCreate");
  const set = nvml.createEventSet();
  const watchedGpus: number[] = [];
  const xids: XidEventFact[] = [];
  try {
    ctx.step("nvmlDeviceGetCount_v2");
    const count = nvml.deviceCount();
    for (let i = 0; i < count; i++) {
      try {
        ctx.step("nvmlDeviceRegisterEvents", i);
        if (set.register(nvml.device(i), ["xidCriticalError"])) watchedGpus.push(i);
      } catch (err) {
        // A lost GPU cannot be watched; reachability reports it.
        if (!(err instanceof NvmlError)) throw err;
      }
    }
    const deadline = clock() + params.windowMs;
    for (;;) {
      const left = deadline - clock();
      if (left <= 0) break;
      ctx.step("nvmlEventSetWait_v2");
      const event = await set.wait(left, ctx.signal ? { signal: ctx.signal } : {});
      if (event === undefined) continue;
      xids.push({
        gpuIndex: event.device?.index,
        code: Number(event.data),
        gpuInstanceId: event.gpuInstanceId,
        computeInstanceId: event.computeInstanceId,
        atMs: clock(),
      });
    }
  } finally {
    await set.free();
  }
  return { windowMs: params.windowMs, watchedGpus, xids };
}
