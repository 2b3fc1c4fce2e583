// One fabric sweep: read sysfs, fold counters into their history, judge every
// port, and (given GPUs) compute GPU↔NIC affinity. Synchronous because the
// read is (see sysfs-files.ts); the agent calls it from a worker thread.
import { resolve } from "node:path";
import { performance } from "node:perf_hooks";
import { sampleFromPort } from "./counters.js";
import type { FabricExpectations } from "./expect-config.js";
import type { GpuDescription } from "./gpu-source.js";
import {
  DEFAULT_THRESHOLDS,
  evaluateFabric,
  type FabricHealth,
  isPortUp,
  NO_EXPECTATIONS,
  type PortCounterView,
  retentionMs,
  trackedCounterKeys,
} from "./health.js";
import { advancePortHistory, type HistoryPolicy, type PortHistory } from "./history.js";
import { DEFAULT_PROC_ROOT, DEFAULT_SYSFS_ROOT, type FabricReading, readBootId, readFabric } from "./read.js";
import type { FabricCounterState } from "./snapshot-store.js";
import { computeTopology, type FabricTopology, locateGpus, nicLocations } from "./topology.js";

/** Bound on remembered increments/transitions per port. */
const MAX_HISTORY_ENTRIES = 512;

export interface FabricCollectorOptions {
  sysfsRoot?: string;
  procRoot?: string;
  /** Wall clock in ms; defaults to Date.now. */
  clock?: () => number;
  /** Defaults to `<procRoot>/sys/kernel/random/boot_id`. */
  bootId?: () => string | undefined;
  expectations?: FabricExpectations;
}

export interface FabricCollection {
  atMs: number;
  bootId: string | undefined;
  reading: FabricReading;
  health: FabricHealth;
  /** To keep for the next sweep (and to persist with saveSnapshots). */
  state: FabricCounterState;
  /** Only when GPUs were given. */
  topology: FabricTopology | undefined;
  durationMs: number;
}

/** One sweep. `previous` is the state the last sweep returned (or loaded from disk). */
export function collectFabric(
  previous: FabricCounterState | undefined,
  options: FabricCollectorOptions = {},
  gpus?: readonly GpuDescription[],
): FabricCollection {
  const started = performance.now();
  const sysfsRoot = resolve(options.sysfsRoot ?? DEFAULT_SYSFS_ROOT);
  const procRoot = options.procRoot ?? DEFAULT_PROC_ROOT;
  const atMs = (options.clock ?? Date.now)();
  const bootId = options.bootId ? options.bootId() : readBootId(procRoot);
  const expectations = options.expectations ?? { expected: NO_EXPECTATIONS, thresholds: DEFAULT_THRESHOLDS };
  const policy: HistoryPolicy = {
    trackedCounters: trackedCounterKeys(expectations.thresholds),
    retainMs: retentionMs(expectations.thresholds),
    maxEntries: MAX_HISTORY_ENTRIES,
  };

  const reading = readFabric({ sysfsRoot });
  // History of another root (a fixture, a chroot) says nothing about this one.
  const before = previous && previous.sysfsRoot === reading.sysfsRoot ? previous.ports : new Map<string, PortHistory>();
  const ports = new Map<string, PortHistory>();
  const counters = new Map<string, PortCounterView>();
  for (const device of reading.devices) {
    for (const port of device.ports) {
      const step = advancePortHistory(before.get(port.key), sampleFromPort(port, atMs, bootId), isPortUp(port), policy);
      ports.set(port.key, step.history);
      counters.set(port.key, step);
    }
  }
  // A vanished port keeps its history for a while, so its return is seen as a transition, not a first sample.
  for (const [key, h] of before) if (!ports.has(key) && h.sample.atMs > atMs - policy.retainMs) ports.set(key, h);

  const health = evaluateFabric({
    reading,
    counters,
    expected: expectations.expected,
    thresholds: expectations.thresholds,
    nowMs: atMs,
  });
  const topology = gpus ? computeTopology(locateGpus(sysfsRoot, gpus), nicLocations(reading, health)) : undefined;
  return {
    atMs,
    bootId,
    reading,
    health,
    state: { sysfsRoot: reading.sysfsRoot, ports },
    topology,
    durationMs: performance.now() - started,
  };
}
