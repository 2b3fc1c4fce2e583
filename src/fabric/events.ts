// Health transitions as events for the agent's event log: a pure diff of the
// previous and the current evaluation.
import type { FabricHealth, FabricProblem, HealthReason, PortVerdict, ReasonCode } from "./health.js";

export interface PortHealthEvent {
  type: "fabric.port.health";
  atMs: number;
  key: string;
  device: string;
  port: number;
  /** `unknown` on the first evaluation, `absent` when the port was not there. */
  from: PortVerdict | "unknown" | "absent";
  to: PortVerdict | "absent";
  reasons: HealthReason[];
  /** Reason codes that appeared / went away since the previous evaluation. */
  added: ReasonCode[];
  cleared: ReasonCode[];
}

export interface FabricProblemEvent {
  type: "fabric.problem";
  atMs: number;
  status: "raised" | "cleared";
  problem: FabricProblem;
}

export type FabricEvent = PortHealthEvent | FabricProblemEvent;

/**
 * Events for what changed between two evaluations: a port's verdict, the set
 * of reason codes behind it, ports appearing or vanishing, and fabric
 * problems raised or cleared. With no previous evaluation (agent start),
 * only what is not healthy is reported.
 */
export function diffFabricHealth(prev: FabricHealth | undefined, curr: FabricHealth): FabricEvent[] {
  const events: FabricEvent[] = [];
  const atMs = curr.atMs;
  const before = new Map((prev?.ports ?? []).map((p) => [p.key, p]));
  for (const p of curr.ports) {
    const old = before.get(p.key);
    const codes = uniqueCodes(p.reasons);
    const oldCodes = old ? uniqueCodes(old.reasons) : [];
    const added = codes.filter((c) => !oldCodes.includes(c));
    const cleared = oldCodes.filter((c) => !codes.includes(c));
    const from = old ? old.verdict : prev ? "absent" : "unknown";
    if (from === "unknown" && p.verdict === "healthy") continue;
    if (old && old.verdict === p.verdict && added.length === 0 && cleared.length === 0) continue;
    events.push({
      type: "fabric.port.health",
      atMs,
      key: p.key,
      device: p.device,
      port: p.port,
      from,
      to: p.verdict,
      reasons: p.reasons,
      added,
      cleared,
    });
  }
  if (prev) {
    const now = new Set(curr.ports.map((p) => p.key));
    for (const old of prev.ports) {
      if (now.has(old.key)) continue;
      events.push({
        type: "fabric.port.health",
        atMs,
        key: old.key,
        device: old.device,
        port: old.port,
        from: old.verdict,
        to: "absent",
        reasons: [],
        added: [],
        cleared: uniqueCodes(old.reasons),
      });
    }
  }
  const id = (p: FabricProblem) => `${p.code}:${p.subject}`;
  const oldProblems = new Map((prev?.problems ?? []).map((p) => [id(p), p]));
  const newProblems = new Map(curr.problems.map((p) => [id(p), p]));
  for (const [k, p] of newProblems)
    if (!oldProblems.has(k)) events.push({ type: "fabric.problem", atMs, status: "raised", problem: p });
  for (const [k, p] of oldProblems)
    if (!newProblems.has(k)) events.push({ type: "fabric.problem", atMs, status: "cleared", problem: p });
  return events;
}

function uniqueCodes(reasons: readonly HealthReason[]): ReasonCode[] {
  return [...new Set(reasons.map((r) => r.code))];
}
