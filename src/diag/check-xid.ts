// XIDs: what the driver reported recently (kernel log, the agent's event log) and during the
// standard level's window (NVML events and the kernel log). Each code is judged by NVIDIA's
// catalog (src/telemetry/xid-catalog.ts): fatal ones fail, degrading ones warn, application
// faults only warn when they recur (the Kubernetes device plugin ignores them too).
import { lookupXid, type XidEntry } from "../telemetry/xid-catalog.js";
import type { DiagConfig } from "./config.js";
import type { GatherContext, KernelXids, XidObservation } from "./context.js";
import { NvmlUnavailableError } from "./errors.js";
import type { EventWindowFacts, SystemFacts } from "./facts.js";
import { type Finding, fail, fold, gpuLabel, warn } from "./findings.js";
import { normalizePciPrefix } from "./kernel-log.js";
import type { Check, Verdict } from "./types.js";

/** One XID sighting, from whichever source. */
export interface XidSighting {
  readonly code: number;
  readonly gpuIndex: number | undefined;
  /** NVRM form `0000:1b:00`, when known. */
  readonly pciAddress: string | undefined;
  readonly atMs: number | undefined;
  readonly source: string;
  readonly process: string | undefined;
  readonly message: string | undefined;
}

export interface XidFacts {
  readonly sightings: readonly XidSighting[];
  /** What was read, for evidence ("kernel log: journalctl -k since …"). */
  readonly read: readonly string[];
  /** Sources that could not be read, with why. */
  readonly unavailable: readonly string[];
  /** GPU index ↔ PCI bus id, to name GPUs the kernel log knows only by address. */
  readonly gpus: readonly { readonly index: number; readonly pciBusId: string | undefined }[];
}

/** Plain words per XID where the catalog's bucket alone says too little (reference/monitoring.md §2.3). */
const XID_FIX: Readonly<Record<number, string>> = {
  13: "an application fault: restart the application, not the node; suspect the GPU only if it recurs across different jobs",
  31: "an application fault (illegal memory access): restart the application, not the node; suspect the GPU only if it recurs across different jobs",
  43: "the GPU stopped a faulting application: restart the application, not the node",
  45: "cleanup after an earlier error: act on the XID that came before it",
  48: "an uncorrectable (double-bit) ECC error: drain the GPU, reset it (nvidia-smi -r -i <index>), then check row remapping and retired pages (tessera diag)",
  62: "an internal micro-controller halted: drain the GPU and reset it; contact NVIDIA support if it recurs",
  63: "a memory row was marked for remapping: reset the GPU at its next idle moment to apply the remap",
  64: "memory row remapping failed: drain the GPU and reset it; RMA the GPU if it happens again",
  74: "an NVLink error: drain the node, read the NVLink error counters (nvidia-smi nvlink -e) and the fabric manager log",
  79: "the GPU fell off the bus: drain the node and reboot it (cold power cycle if it does not come back); RMA the GPU if it recurs",
  92: "a high single-bit ECC error rate: watch the trend; plan an RMA if it keeps rising",
  94: "a contained memory error: restart the affected application; reset the GPU when it is idle",
  95: "an uncontained memory error: drain the GPU and reset it",
  109: "a context-switch timeout: drain the GPU and reset it",
  119: "the GPU's GSP firmware timed out: drain the GPU and reset it; if it recurs, update the driver (usually a driver issue)",
  120: "the GPU's GSP firmware failed: drain the GPU and reset it; if it recurs, update the driver (usually a driver issue)",
  140: "an unrecovered ECC error: drain the GPU and reset it; contact NVIDIA support if it recurs",
  154: "the driver changed the recovery action for an earlier XID: read it (nvidia-smi -q, 'GPU Recovery Action') and do what it says",
};

/** NVIDIA's resolution buckets in plain words, for codes without their own sentence. */
const ACTION_FIX: Readonly<Record<string, string>> = {
  RESTART_APP: "restart the application, not the node",
  RESET_GPU: "drain the GPU and reset it (nvidia-smi -r -i <index>)",
  RESTART_BM: "drain the node and reboot it",
  RESTART_VM: "drain the node and restart the VM",
  CONTACT_SUPPORT: "collect nvidia-bug-report.sh and contact NVIDIA support",
  IGNORE: "no action unless it recurs",
  INVESTIGATE: "look the code up in NVIDIA's XID catalog (docs.nvidia.com/deploy/xid-errors)",
};

export function xidRemediation(entry: XidEntry): string {
  const words = XID_FIX[entry.code] ?? ACTION_FIX[entry.action] ?? ACTION_FIX.INVESTIGATE;
  return `XID ${entry.code} (${entry.description}): ${words}.`;
}

async function gpusOrEmpty(ctx: GatherContext): Promise<SystemFacts["gpus"]> {
  try {
    return (await ctx.nvml("system")).gpus;
  } catch (err) {
    // The kernel log is worth reading exactly when NVML is broken; GPUs are then named by address.
    if (err instanceof NvmlUnavailableError) return [];
    throw err;
  }
}

function fromKernel(kernel: KernelXids): XidSighting[] {
  return kernel.xids.map((x) => ({
    code: x.code,
    gpuIndex: undefined,
    pciAddress: x.pciAddress,
    atMs: x.atMs,
    source: "kernel log",
    process: x.pid === undefined ? x.processName : `pid ${x.pid}${x.processName ? ` ${x.processName}` : ""}`,
    message: x.message,
  }));
}

function fromHistory(history: readonly XidObservation[], sinceMs: number): XidSighting[] {
  return history
    .filter((x) => x.atMs >= sinceMs)
    .map((x) => ({
      code: x.code,
      gpuIndex: x.gpuIndex,
      pciAddress: x.pciAddress === undefined ? undefined : normalizePciPrefix(x.pciAddress),
      atMs: x.atMs,
      source: x.source,
      process: undefined,
      message: undefined,
    }));
}

function fromEvents(events: EventWindowFacts): XidSighting[] {
  return events.xids.map((x) => ({
    code: x.code,
    gpuIndex: x.gpuIndex,
    pciAddress: undefined,
    atMs: x.atMs,
    source: "NVML event",
    process: x.gpuInstanceId === undefined ? undefined : `GPU instance ${x.gpuInstanceId}`,
    message: undefined,
  }));
}

function kernelNotes(kernel: KernelXids, since: string): { read: string[]; unavailable: string[] } {
  return kernel.reading.unavailable
    ? { read: [], unavailable: [kernel.reading.unavailable] }
    : { read: [`kernel log (${kernel.reading.description}) since ${since}`], unavailable: [] };
}

export const xidCheck: Check<XidFacts> = {
  id: "gpu.xid",
  title: "No XIDs that need action seen recently",
  level: "quick",
  reads: ["kernel log (journalctl -k, /dev/kmsg or --kernel-log): NVRM: Xid lines", "the agent's XID events"],
  async gather(ctx) {
    const sinceMs = ctx.startedMs - ctx.config.xidLookbackMs;
    const [kernel, gpus] = await Promise.all([ctx.kernelXids(), gpusOrEmpty(ctx)]);
    const history = ctx.xidHistory();
    const notes = kernelNotes(kernel, new Date(sinceMs).toISOString());
    return {
      sightings: [...fromKernel(kernel), ...fromHistory(history ?? [], sinceMs)],
      read: [...notes.read, ...(history ? ["the agent's XID events"] : [])],
      unavailable: notes.unavailable,
      gpus,
    };
  },
  verdict: (facts, config) => judgeXids(facts, config, "recently"),
};

export const xidBurstCheck: Check<XidFacts> = {
  id: "gpu.xid-burst",
  title: "No XIDs during the sampling window",
  level: "standard",
  windowed: true,
  reads: ["nvmlEventSetWait_v2 (XidCriticalError) over the window", "kernel log lines printed during the window"],
  async gather(ctx) {
    const [events, gpus] = await Promise.all([ctx.nvml("events-window"), gpusOrEmpty(ctx)]);
    const kernel = await ctx.kernelXids(ctx.startedMs);
    const notes = kernelNotes(kernel, "the window started");
    return {
      // The same XID reaches both sources; judgeXids counts each source separately and keeps the larger.
      sightings: [...fromEvents(events), ...fromKernel(kernel).filter((s) => (s.atMs ?? 0) >= ctx.startedMs)],
      read: [
        `NVML XID events on GPU ${events.watchedGpus.join(", ") || "none"} for ${events.windowMs} ms`,
        ...notes.read,
      ],
      unavailable: notes.unavailable,
      gpus,
    };
  },
  verdict: (facts, config) => judgeXids(facts, config, "during the window"),
};

interface XidGroup {
  gpuIndex: number | undefined;
  pciAddress: string | undefined;
  code: number;
  bySource: Map<string, number>;
  lastAtMs: number | undefined;
  processes: Set<string>;
  message: string | undefined;
}

/** Pure: sightings grouped per GPU and code, each group judged by the catalog. */
export function judgeXids(facts: XidFacts, config: DiagConfig, when: string): Verdict {
  const byAddress = new Map(
    facts.gpus.flatMap((g) => (g.pciBusId ? [[normalizePciPrefix(g.pciBusId), g] as const] : [])),
  );
  const byIndex = new Map(facts.gpus.map((g) => [g.index, g]));
  const groups = new Map<string, XidGroup>();
  for (const s of facts.sightings) {
    const gpuIndex = s.gpuIndex ?? (s.pciAddress ? byAddress.get(s.pciAddress)?.index : undefined);
    // NVML's bus id names the GPU the way nvidia-smi does; the kernel's address is the fallback.
    const pciAddress = (gpuIndex === undefined ? undefined : byIndex.get(gpuIndex)?.pciBusId) ?? s.pciAddress;
    const key = `${gpuIndex ?? pciAddress ?? "?"}/${s.code}`;
    let g = groups.get(key);
    if (!g) {
      g = {
        gpuIndex,
        pciAddress,
        code: s.code,
        bySource: new Map(),
        lastAtMs: undefined,
        processes: new Set(),
        message: undefined,
      };
      groups.set(key, g);
    }
    g.bySource.set(s.source, (g.bySource.get(s.source) ?? 0) + 1);
    if (s.atMs !== undefined && (g.lastAtMs === undefined || s.atMs > g.lastAtMs)) g.lastAtMs = s.atMs;
    if (s.process) g.processes.add(s.process);
    g.message ??= s.message || undefined;
  }

  const findings: Finding[] = [...groups.values()]
    .sort((a, b) => (a.gpuIndex ?? 1e9) - (b.gpuIndex ?? 1e9) || a.code - b.code)
    .map((g) => judgeGroup(g, config));
  if (findings.length === 0) {
    if (facts.read.length === 0) {
      return { status: "skip", evidence: [...facts.unavailable], remediation: "" };
    }
    return {
      status: "pass",
      evidence: [`no XIDs ${when}: read ${facts.read.join(", ")}`, ...facts.unavailable],
      remediation: "",
    };
  }
  const verdict = fold(findings);
  return { ...verdict, evidence: [...verdict.evidence, ...facts.unavailable] };
}

function judgeGroup(g: XidGroup, config: DiagConfig): Finding {
  const entry = lookupXid(g.code);
  // The same XID reaches several sources (NVML event and kernel line): count the most any one saw.
  const count = Math.max(...g.bySource.values());
  const where =
    g.gpuIndex === undefined ? `GPU at PCI ${g.pciAddress ?? "unknown"}` : gpuLabel(g.gpuIndex, g.pciAddress);
  const when = g.lastAtMs === undefined ? "" : `, last ${new Date(g.lastAtMs).toISOString()}`;
  const who = g.processes.size > 0 ? `, ${[...g.processes].slice(0, 3).join("; ")}` : "";
  const detail = g.message ? `: ${g.message}` : "";
  const text = `${where}: XID ${g.code} ${entry.mnemonic} ×${count}${when} (${[...g.bySource.keys()].join(", ")}${who})${detail}`;
  const remediation = xidRemediation(entry);
  if (entry.severity === "fatal") return fail(text, remediation);
  if (entry.severity === "warn") return warn(text, remediation);
  if (count >= config.thresholds.xidBurstCount) {
    return warn(
      `${text}; recurring (${count} ≥ ${config.thresholds.xidBurstCount})`,
      `${remediation} Recurring application XIDs on one GPU across different jobs point at the GPU: drain it and run a longer diagnostic.`,
    );
  }
  return { status: "pass", text, remediation };
}
