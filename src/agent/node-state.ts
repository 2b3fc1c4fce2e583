// The main thread's view of the node: immutable snapshots built from the sampler's sweeps, GPU
// health from telemetry and XIDs, and the events that describe what changed (health transitions,
// lost GPUs, MIG changes, link changes, XID and ECC events), appended to the event log in order.

import type { AgentEventInit, EventLog } from "../telemetry/event-log.js";
import {
  type GpuHealthInput,
  gpuHealth,
  type HealthThresholds,
  type HealthVerdict,
  pruneXids,
  type XidRecord,
} from "../telemetry/health.js";
import type { FabricSweep, GpuReading, SweepResult } from "../telemetry/sweep-types.js";
import { lookupXid } from "../telemetry/xid-catalog.js";
import type { NvmlEventMessage } from "./worker-protocol.js";

export interface NodeSnapshot {
  /** 1, 2, … per snapshot. */
  readonly version: number;
  readonly sweep: SweepResult;
  /** The latest fabric sweep (fabric is read less often than NVML). */
  readonly fabric: FabricSweep | undefined;
  /** By GPU index. */
  readonly health: ReadonlyMap<number, HealthVerdict>;
  /** The sampler has not finished a sweep within its timeout. */
  readonly stale: boolean;
  readonly atMs: number;
  /** The event log's last sequence number when this snapshot was made. */
  readonly lastSeq: number;
}

export interface XidStats {
  /** Count per XID code since start. */
  readonly counts: ReadonlyMap<number, number>;
  readonly last: number | undefined;
}

type SnapshotListener = (snapshot: NodeSnapshot) => void;

function instanceKeys(g: GpuReading): Map<string, string> {
  const out = new Map<string, string>();
  for (const gi of g.mig?.instances ?? [])
    out.set(
      `${gi.gpuInstanceId}/${gi.profileId}@${gi.placement.start}`,
      `${gi.profileName}@${gi.placement.start} (GPU instance ${gi.gpuInstanceId})`,
    );
  return out;
}

function label(g: GpuReading): string {
  return `GPU ${g.identity.index} (${g.identity.uuid})`;
}

export class NodeState {
  readonly #log: EventLog;
  readonly #clock: () => number;
  #thresholds: HealthThresholds;
  #snapshot: NodeSnapshot | undefined;
  #version = 0;
  readonly #xids = new Map<string, XidRecord[]>();
  readonly #xidStats = new Map<string, { counts: Map<number, number>; last: number | undefined }>();
  readonly #listeners = new Set<SnapshotListener>();

  constructor(log: EventLog, thresholds: HealthThresholds, clock: () => number = Date.now) {
    this.#log = log;
    this.#thresholds = thresholds;
    this.#clock = clock;
  }

  get snapshot(): NodeSnapshot | undefined {
    return this.#snapshot;
  }

  get thresholds(): HealthThresholds {
    return this.#thresholds;
  }

  xidStats(gpuUuid: string): XidStats | undefined {
    return this.#xidStats.get(gpuUuid);
  }

  onSnapshot(listener: SnapshotListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  setThresholds(thresholds: HealthThresholds): void {
    this.#thresholds = thresholds;
    if (this.#snapshot) this.#publish(this.#snapshot.sweep, this.#snapshot.fabric, this.#snapshot.stale);
  }

  ingestSweep(sweep: SweepResult): NodeSnapshot {
    const prev = this.#snapshot;
    const fabric = sweep.fabric ?? prev?.fabric;
    if (prev) this.#diffGpus(prev.sweep, sweep);
    for (const c of sweep.fabric?.changes ?? []) {
      this.#emit({
        kind: "link",
        atMs: sweep.fabric?.atMs ?? sweep.startedAtMs,
        gpuIndex: undefined,
        gpuUuid: "",
        message: `${c.device}/${c.port}: ${c.previous} → ${c.current}${c.reasons.length ? `: ${c.reasons.join("; ")}` : ""}`,
        detail: { type: "link", ...c },
      });
    }
    return this.#publish(sweep, fabric, false);
  }

  /** The sampler missed its deadline: readers get the last values, marked stale. */
  markStale(): NodeSnapshot | undefined {
    const s = this.#snapshot;
    if (!s || s.stale) return s;
    return this.#publish(s.sweep, s.fabric, true);
  }

  ingestNvmlEvent(e: NvmlEventMessage): void {
    const gpu = this.#snapshot?.sweep.gpus.find((g) => g.identity.index === e.gpuIndex);
    const uuid = e.gpuUuid || gpu?.identity.uuid || "";
    const where = `GPU ${e.gpuIndex ?? "?"}${uuid ? ` (${uuid})` : ""}`;
    if (e.typeNames.includes("xidCriticalError")) {
      const code = Number(e.data);
      const entry = lookupXid(code);
      const history = this.#xids.get(uuid) ?? [];
      history.push({ code, atMs: e.atMs, gpuInstanceId: e.gpuInstanceId });
      this.#xids.set(uuid, pruneXids(history, e.atMs, this.#thresholds));
      const stats = this.#xidStats.get(uuid) ?? { counts: new Map<number, number>(), last: undefined };
      stats.counts.set(code, (stats.counts.get(code) ?? 0) + 1);
      stats.last = code;
      this.#xidStats.set(uuid, stats);
      const gi = e.gpuInstanceId === undefined ? "" : ` GPU instance ${e.gpuInstanceId}`;
      this.#emit({
        kind: "xid",
        atMs: e.atMs,
        gpuIndex: e.gpuIndex,
        gpuUuid: uuid,
        message: `${where}${gi}: XID ${code} ${entry.mnemonic} (${entry.description}): ${entry.action}`,
        detail: {
          type: "xid",
          code,
          gpuInstanceId: e.gpuInstanceId,
          description: entry.description,
          action: entry.action,
        },
      });
      // Health follows the XID at once, not at the next sweep.
      if (this.#snapshot) this.#publish(this.#snapshot.sweep, this.#snapshot.fabric, this.#snapshot.stale);
    }
    for (const type of ["singleBitEccError", "doubleBitEccError"] as const) {
      if (!e.typeNames.includes(type)) continue;
      const t = gpu?.telemetry;
      this.#emit({
        kind: "ecc",
        atMs: e.atMs,
        gpuIndex: e.gpuIndex,
        gpuUuid: uuid,
        message: `${where}: ${type === "singleBitEccError" ? "single-bit (corrected)" : "double-bit (uncorrectable)"} ECC error`,
        detail: {
          type: "ecc",
          errorType: type === "singleBitEccError" ? "single_bit" : "double_bit",
          volatileCorrected: t?.eccCorrectedVolatile,
          volatileUncorrected: t?.eccUncorrectedVolatile,
        },
      });
    }
  }

  /** Emits an event that another part of the agent observed (leases, MIG applies). */
  emit(init: AgentEventInit): void {
    this.#emit(init);
  }

  #emit(init: AgentEventInit): void {
    this.#log.append(init);
  }

  #publish(sweep: SweepResult, fabric: FabricSweep | undefined, stale: boolean): NodeSnapshot {
    const prev = this.#snapshot;
    const nowMs = this.#clock();
    const health = new Map<number, HealthVerdict>();
    for (const g of sweep.gpus) {
      const t = g.telemetry;
      const input: GpuHealthInput = {
        lost: g.lost,
        xids: this.#xids.get(g.identity.uuid) ?? [],
        eccUncorrectedVolatile: t?.eccUncorrectedVolatile,
        remappedRows: t?.remappedRows,
        retiredPagesPending: t?.retiredPagesPending,
        temperatureC: t?.temperatureC,
        slowdownTemperatureC: g.identity.slowdownTemperatureC,
        nowMs,
      };
      const verdict = gpuHealth(input, this.#thresholds);
      health.set(g.identity.index, verdict);
      const before = prev?.health.get(g.identity.index);
      const previous = before?.state ?? "unknown";
      if (previous !== verdict.state && !(previous === "unknown" && verdict.state === "healthy")) {
        this.#emit({
          kind: "health",
          atMs: nowMs,
          gpuIndex: g.identity.index,
          gpuUuid: g.identity.uuid,
          message: `${label(g)}: ${previous} → ${verdict.state}${verdict.reasons.length ? `: ${verdict.reasons[0]}` : ""}`,
          detail: { type: "health", previous, current: verdict.state, reasons: verdict.reasons },
        });
      }
    }
    const snapshot: NodeSnapshot = {
      version: ++this.#version,
      sweep,
      fabric,
      health,
      stale,
      atMs: nowMs,
      lastSeq: this.#log.lastSeq,
    };
    this.#snapshot = snapshot;
    for (const l of this.#listeners) l(snapshot);
    return snapshot;
  }

  #diffGpus(prev: SweepResult, next: SweepResult): void {
    const before = new Map(prev.gpus.map((g) => [g.identity.index, g]));
    for (const g of next.gpus) {
      const old = before.get(g.identity.index);
      if (g.lost && !old?.lost) {
        this.#emit({
          kind: "gpu_lost",
          atMs: next.startedAtMs,
          gpuIndex: g.identity.index,
          gpuUuid: g.identity.uuid,
          message: `${label(g)} has fallen off the bus (GPU_IS_LOST)`,
          detail: { type: "none" },
        });
      }
      // The sampler hands over the same MIG object while nothing changed.
      if (!old || g.lost || old.lost || !g.mig || !old.mig || g.mig === old.mig) continue;
      const migEvent = (change: string) =>
        this.#emit({
          kind: "mig",
          atMs: next.startedAtMs,
          gpuIndex: g.identity.index,
          gpuUuid: g.identity.uuid,
          message: `${label(g)}: ${change}`,
          detail: { type: "mig", change },
        });
      const mode = (m: { enabled: boolean; pendingEnabled: boolean }) =>
        `${m.enabled ? "enabled" : "disabled"}${m.pendingEnabled !== m.enabled ? ` (pending ${m.pendingEnabled ? "enabled" : "disabled"})` : ""}`;
      if (old.mig.enabled !== g.mig.enabled || old.mig.pendingEnabled !== g.mig.pendingEnabled)
        migEvent(`MIG mode ${mode(old.mig)} → ${mode(g.mig)}`);
      const was = instanceKeys(old);
      const now = instanceKeys(g);
      for (const [k, what] of was) if (!now.has(k)) migEvent(`destroyed ${what}`);
      for (const [k, what] of now) if (!was.has(k)) migEvent(`created ${what}`);
    }
  }
}
