// What checks read, shared by every check of a run: each source is asked once (NVML families,
// the kernel log, sysfs) and every check that needs it awaits the same answer. Each check sees
// the context through its own view, which remembers what the check is waiting on, so a check
// that times out can say which call it was stuck behind.
import { constants } from "node:fs";
import { access } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { collectFabric, type FabricCollection, type FabricExpectations } from "../fabric/index.js";
import type { DiagConfig } from "./config.js";
import { FactsUnavailableError } from "./errors.js";
import type { ProbeFamilies, ProbeFamily, ProbeParams } from "./facts.js";
import {
  type KernelLogReading,
  type KernelLogSource,
  type KernelXid,
  parseKernelLog,
  readKernelLog,
} from "./kernel-log.js";
import type { LeaseProvider, LeaseRecord } from "./leases.js";
import type { NvmlFactSource } from "./nvml-source.js";

/** An XID somebody else saw (the agent's event log), by GPU index or PCI address. */
export interface XidObservation {
  readonly code: number;
  readonly gpuIndex?: number;
  /** NVML or NVRM form; normalized before matching. */
  readonly pciAddress?: string;
  readonly gpuInstanceId?: number;
  readonly atMs: number;
  /** Where it was seen, for evidence ("NVML event", "kernel log"). */
  readonly source: string;
}

export interface FabricSourceOptions {
  readonly sysfsRoot: string;
  readonly procRoot: string;
  readonly expectations?: FabricExpectations;
}

/** Everything a run reads from. Only `nvml` is required; checks whose source is absent are skipped. */
export interface DiagnosticSources {
  readonly nvml: NvmlFactSource;
  /** Default: not read (the CLI passes `auto`: the journal, else /dev/kmsg). */
  readonly kernelLog?: KernelLogSource;
  /** procfs for the boot time and the driver's MIG capabilities; default /proc. */
  readonly procRoot?: string;
  /** RDMA fabric to judge; absent: fabric and topology checks are skipped. */
  readonly fabric?: FabricSourceOptions;
  /** Current leases; absent: lease checks are skipped. */
  readonly leases?: LeaseProvider;
  /** XIDs the caller already saw (the agent's event log); merged with the kernel log's. */
  readonly xidHistory?: () => readonly XidObservation[];
  /** Effective uid of whoever will manage MIG (default: this process's). */
  readonly euid?: number;
  /** Wall clock in ms; default Date.now. */
  readonly clock?: () => number;
}

export interface KernelXids {
  readonly reading: Omit<KernelLogReading, "text">;
  /** XIDs within the lookback (and those whose time the log does not tell). */
  readonly xids: readonly KernelXid[];
}

export interface MigCapabilityFacts {
  readonly euid: number | undefined;
  readonly simulated: boolean | undefined;
  /** Whether the driver exposes `<procRoot>/driver/nvidia/capabilities/mig` at all. */
  readonly directory: boolean;
  /** `<procRoot>/driver/nvidia/capabilities/mig/{config,monitor}`: absent, or readable or not. */
  readonly config: "absent" | "readable" | "unreadable";
  readonly monitor: "absent" | "readable" | "unreadable";
}

export interface FabricWindow {
  readonly start: FabricCollection;
  readonly end: FabricCollection;
}

/** The facts a check may ask for. */
export interface GatherContext {
  readonly config: DiagConfig;
  readonly signal: AbortSignal;
  /** When the run (and the standard level's window) started. */
  readonly startedMs: number;
  now(): number;
  nvml<K extends ProbeFamily>(family: K): Promise<ProbeFamilies[K]>;
  /** XIDs the kernel printed since `sinceMs` (default: the lookback before the run). */
  kernelXids(sinceMs?: number): Promise<KernelXids>;
  xidHistory(): readonly XidObservation[] | undefined;
  migCapabilities(): Promise<MigCapabilityFacts>;
  /** One read of the fabric (no counter rates). Throws FactsUnavailableError without a fabric source. */
  fabric(): Promise<FabricCollection>;
  /** Two reads a window apart, for counter rates. */
  fabricWindow(): Promise<FabricWindow>;
  /** The sysfs root the fabric source reads, for GPU locations. */
  fabricSource(): FabricSourceOptions;
  /** Current leases; throws FactsUnavailableError without a lease source. */
  leases(): Promise<readonly LeaseRecord[]>;
}

/** Something a check waited on that had not answered when it timed out. */
export interface PendingRead {
  readonly key: string;
  readonly family: ProbeFamily | undefined;
  readonly startedMs: number;
}

/** The run's shared reads; `view()` gives each check its own window onto them. */
export class RunFacts {
  readonly #sources: DiagnosticSources;
  readonly #config: DiagConfig;
  readonly #signal: AbortSignal;
  readonly #memo = new Map<string, { promise: Promise<unknown>; settled: boolean; startedMs: number }>();
  readonly startedMs: number;

  constructor(sources: DiagnosticSources, config: DiagConfig, signal: AbortSignal) {
    this.#sources = sources;
    this.#config = config;
    this.#signal = signal;
    this.startedMs = this.now();
  }

  get sources(): DiagnosticSources {
    return this.#sources;
  }

  now(): number {
    return (this.#sources.clock ?? Date.now)();
  }

  /** Memoized read; settles once for every check that asks. */
  read<T>(key: string, start: () => Promise<T>): Promise<T> {
    let entry = this.#memo.get(key);
    if (!entry) {
      const created = { promise: Promise.resolve() as Promise<unknown>, settled: false, startedMs: Date.now() };
      created.promise = start().finally(() => {
        created.settled = true;
      });
      // Every check awaiting it handles the rejection; one that timed out no longer does.
      created.promise.catch(() => undefined);
      this.#memo.set(key, created);
      entry = created;
    }
    return entry.promise as Promise<T>;
  }

  pending(keys: Iterable<string>): PendingRead[] {
    const out: PendingRead[] = [];
    for (const key of keys) {
      const entry = this.#memo.get(key);
      if (!entry || entry.settled) continue;
      const family = key.startsWith("nvml:") ? (key.slice(5) as ProbeFamily) : undefined;
      out.push({ key, family, startedMs: entry.startedMs });
    }
    return out;
  }

  /** A check's view: the same reads, plus a record of which ones it waited on. */
  view(awaited: Set<string>): GatherContext {
    const config = this.#config;
    const sources = this.#sources;
    const signal = this.#signal;
    const track = <T>(key: string, start: () => Promise<T>) => {
      awaited.add(key);
      return this.read(key, start);
    };
    const params: ProbeParams = { windowMs: config.windowMs, sampleIntervalMs: config.sampleIntervalMs };
    const procRoot = sources.procRoot ?? "/proc";
    const fabricSource = (): FabricSourceOptions => {
      if (!sources.fabric) throw new FactsUnavailableError("no fabric source configured (pass --sysfs-root)");
      return sources.fabric;
    };
    const collect = (previous?: FabricCollection) => {
      const f = fabricSource();
      return collectFabric(previous?.state, {
        sysfsRoot: f.sysfsRoot,
        procRoot: f.procRoot,
        clock: () => this.now(),
        ...(f.expectations ? { expectations: f.expectations } : {}),
      });
    };
    return {
      config,
      signal,
      startedMs: this.startedMs,
      now: () => this.now(),
      nvml: (family) => track(`nvml:${family}`, () => sources.nvml.probe(family, params)),
      kernelXids: (since?: number) =>
        track(`kernel-log@${since ?? "lookback"}`, async () => {
          const sinceMs = since ?? this.startedMs - config.xidLookbackMs;
          const { text, ...reading } = await readKernelLog(sources.kernelLog ?? { kind: "none" }, {
            sinceMs,
            procRoot,
            timeoutMs: config.checkTimeoutMs,
            signal,
          });
          const year = new Date(this.now()).getFullYear();
          const parsed = text === undefined ? [] : parseKernelLog(text, { ...optional(reading.bootTimeMs), year });
          return { reading, xids: parsed.filter((x) => x.atMs === undefined || x.atMs >= sinceMs) };
        }),
      xidHistory: () => sources.xidHistory?.(),
      migCapabilities: () =>
        track("mig-capabilities", async () => {
          const dir = join(procRoot, "driver", "nvidia", "capabilities", "mig");
          // Only to tell the simulator apart; whether NVML works is nvml.library's to report.
          const system = await this.read("nvml:system", () => sources.nvml.probe("system", params)).catch(
            () => undefined,
          );
          return {
            euid: sources.euid ?? process.geteuid?.(),
            simulated: system?.simulated,
            directory: (await readable(dir)) !== "absent",
            config: await readable(join(dir, "config")),
            monitor: await readable(join(dir, "monitor")),
          };
        }),
      fabric: () => track("fabric", async () => collect()),
      fabricWindow: () =>
        track("fabric-window", async () => {
          const start = collect();
          await sleep(config.windowMs, undefined, { signal });
          return { start, end: collect(start) };
        }),
      fabricSource,
      leases: () =>
        track("leases", async () => {
          if (!sources.leases) throw new FactsUnavailableError("no lease source (the agent's lease checkpoint)");
          return sources.leases();
        }),
    };
  }
}

function optional(bootTimeMs: number | undefined): { bootTimeMs?: number } {
  return bootTimeMs === undefined ? {} : { bootTimeMs };
}

async function readable(path: string): Promise<"absent" | "readable" | "unreadable"> {
  try {
    await access(path, constants.R_OK);
    return "readable";
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "ENOENT" ? "absent" : "unreadable";
  }
}
