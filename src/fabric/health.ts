// Per-port health verdicts and fabric-level expectations. Pure: every input
// (reading, counter history, expectations, thresholds, time) is a parameter.
// Defaults come from reference/monitoring.md §3.3, §3.4 and §3.7.
import {
  type CounterChange,
  counterWidthBits,
  hwKey,
  PMA_ERROR_COUNTERS,
  type PortTraffic,
  pmaKey,
  trafficFromChange,
} from "./counters.js";
import { downEventsInWindow, incrementsInWindow, type PortHistory } from "./history.js";
import {
  type IbSpeed,
  ibSpeedRank,
  type LinkLayer,
  type LinkRate,
  PHYS_STATE_LINK_UP,
  PORT_STATE_ACTIVE,
} from "./parse.js";
import type { FabricReading, RdmaDeviceReading, RdmaPortReading } from "./read.js";

// ── configuration types ──────────────────────────────────────────────────

export type Severity = "warning" | "critical";

/** More than `maxIncrements` increments of one counter within `windowMs` is a reason. */
export interface CounterThreshold {
  source: "counters" | "hw_counters";
  counter: string;
  maxIncrements: number;
  /** For "any increment" rules (maxIncrements 0) this is how long one increment keeps the port flagged. */
  windowMs: number;
  severity: Severity;
}

export interface FlapPolicy {
  /** This many link-down events within the window make a port flapping. */
  minDownEvents: number;
  windowMs: number;
}

export interface HealthThresholds {
  counters: readonly CounterThreshold[];
  flap: FlapPolicy;
}

const SECOND_MS = 1000;
const MINUTE_MS = 60 * SECOND_MS;
const HOUR_MS = 60 * MINUTE_MS;
/** How long a fatal "any increment" counter keeps a port degraded after it rose. */
const STICKY_MS = 10 * MINUTE_MS;

/**
 * NVSentinel's NIC health defaults (reference §3.3/§3.4); flap detection after
 * GPUd (≥3 downs within 12 h, §3.7).
 */
export const DEFAULT_THRESHOLDS: HealthThresholds = {
  counters: [
    { source: "counters", counter: "symbol_error", maxIncrements: 10, windowMs: SECOND_MS, severity: "warning" },
    { source: "counters", counter: "symbol_error", maxIncrements: 120, windowMs: HOUR_MS, severity: "critical" },
    { source: "counters", counter: "link_error_recovery", maxIncrements: 5, windowMs: MINUTE_MS, severity: "warning" },
    { source: "counters", counter: "link_downed", maxIncrements: 0, windowMs: STICKY_MS, severity: "critical" },
    { source: "counters", counter: "port_rcv_errors", maxIncrements: 10, windowMs: SECOND_MS, severity: "warning" },
    { source: "counters", counter: "port_xmit_discards", maxIncrements: 100, windowMs: SECOND_MS, severity: "warning" },
    {
      source: "counters",
      counter: "local_link_integrity_errors",
      maxIncrements: 0,
      windowMs: STICKY_MS,
      severity: "critical",
    },
    {
      source: "counters",
      counter: "excessive_buffer_overrun_errors",
      maxIncrements: 0,
      windowMs: STICKY_MS,
      severity: "critical",
    },
    {
      source: "hw_counters",
      counter: "rnr_nak_retry_err",
      maxIncrements: 0,
      windowMs: STICKY_MS,
      severity: "critical",
    },
    {
      source: "hw_counters",
      counter: "local_ack_timeout_err",
      maxIncrements: 1,
      windowMs: SECOND_MS,
      severity: "warning",
    },
    {
      source: "hw_counters",
      counter: "roce_slow_restart",
      maxIncrements: 10,
      windowMs: SECOND_MS,
      severity: "warning",
    },
  ],
  flap: { minDownEvents: 3, windowMs: 12 * HOUR_MS },
};

/**
 * Overrides replace every base rule of the counters they name; `disable`
 * (`symbol_error` or `hw_counters/rnr_nak_retry_err`) drops a counter's rules.
 */
export function mergeThresholds(
  base: HealthThresholds,
  overrides: { counters?: readonly CounterThreshold[]; disable?: readonly string[]; flap?: Partial<FlapPolicy> },
): HealthThresholds {
  const named = new Set([
    ...(overrides.counters ?? []).map((t) => `${t.source}/${t.counter}`),
    ...(overrides.disable ?? []).map((c) => (c.includes("/") ? c : `counters/${c}`)),
  ]);
  return {
    counters: [...base.counters.filter((t) => !named.has(`${t.source}/${t.counter}`)), ...(overrides.counters ?? [])],
    flap: { ...base.flap, ...overrides.flap },
  };
}

/** Counter keys whose history thresholds and flap detection read. */
export function trackedCounterKeys(thresholds: HealthThresholds): Set<string> {
  const keys = new Set(
    thresholds.counters.map((t) => (t.source === "counters" ? pmaKey(t.counter) : hwKey(t.counter))),
  );
  keys.add(pmaKey("link_downed"));
  return keys;
}

/** The longest look-back any rule needs. */
export function retentionMs(thresholds: HealthThresholds): number {
  return Math.max(thresholds.flap.windowMs, ...thresholds.counters.map((t) => t.windowMs));
}

export type PortRole = "compute" | "storage" | "management";

export interface ExpectedPort {
  device: string;
  port: number;
  linkLayer?: LinkLayer;
  minRateGbps?: number;
  /** Lanes, e.g. 4 for `4X`. */
  width?: number;
  speed?: IbSpeed;
  role?: PortRole;
}

/** "At least N ports of this kind up at ≥ R Gb/s", e.g. 8 InfiniBand at 400 on an H100 host. */
export interface ExpectedPortCount {
  linkLayer?: LinkLayer;
  minPorts: number;
  minRateGbps?: number;
}

export interface ExpectedFabric {
  ports: readonly ExpectedPort[];
  rules: readonly ExpectedPortCount[];
  /** `mlx5_7` or `mlx5_7/1`: ports whose health does not count (reported, not judged). */
  ignore: readonly string[];
}

export const NO_EXPECTATIONS: ExpectedFabric = { ports: [], rules: [], ignore: [] };

// ── result types ─────────────────────────────────────────────────────────

export type PortVerdict = "healthy" | "degraded" | "flapping" | "down";

export type ReasonCode =
  | "state-not-active"
  | "phys-state-not-linkup"
  | "unreadable"
  | "rate-below-expected"
  | "width-below-expected"
  | "speed-below-expected"
  | "link-layer-mismatch"
  | "error-rate"
  | "link-downed"
  | "flapping"
  | "counter-saturated"
  | "no-uverbs"
  | "no-umad"
  | "pcie-downgraded";

export interface HealthReason {
  code: ReasonCode;
  severity: Severity;
  message: string;
  counter?: string;
  observed?: number;
  limit?: number;
  windowMs?: number;
}

export interface PortExpectation {
  source: "config" | "peers";
  linkLayer?: LinkLayer;
  minRateGbps?: number;
  width?: number;
  speed?: IbSpeed;
}

export interface PortHealth {
  key: string;
  device: string;
  port: number;
  linkLayer: LinkLayer | undefined;
  role: PortRole | undefined;
  /** Listed in `ignore`: shown but not counted in the fabric status. */
  ignored: boolean;
  verdict: PortVerdict;
  reasons: HealthReason[];
  /** Facts worth showing that are not faults (first sample, reset counters, reboot). */
  notes: string[];
  rate: LinkRate | undefined;
  expected: PortExpectation | undefined;
  traffic: PortTraffic | undefined;
  /** Rates of error counters that rose in the last interval, per second. */
  errorRatesPerSec: Record<string, number>;
  downEvents: number;
}

export type FabricProblemCode = "expected-port-missing" | "too-few-ports";

export interface FabricProblem {
  code: FabricProblemCode;
  severity: "critical";
  /** `mlx5_10/1` or the rule, e.g. `InfiniBand>=400Gb/s`. */
  subject: string;
  message: string;
}

export type FabricStatus = "healthy" | "degraded" | "critical";

export interface FabricHealth {
  atMs: number;
  status: FabricStatus;
  ports: PortHealth[];
  problems: FabricProblem[];
}

// ── evaluation ───────────────────────────────────────────────────────────

/** A port can carry traffic: ACTIVE and LinkUp. Undefined when either is unreadable. */
export function isPortUp(port: RdmaPortReading): boolean | undefined {
  if (port.state === undefined || port.physState === undefined) return undefined;
  return port.state.id === PORT_STATE_ACTIVE && port.physState.id === PHYS_STATE_LINK_UP;
}

export interface PortCounterView {
  history: PortHistory;
  change: CounterChange;
}

export interface EvaluateFabricInput {
  reading: FabricReading;
  /** Per port key; ports without an entry are judged on state alone. */
  counters: ReadonlyMap<string, PortCounterView>;
  expected?: ExpectedFabric;
  thresholds?: HealthThresholds;
  nowMs: number;
}

export function evaluateFabric(input: EvaluateFabricInput): FabricHealth {
  const expected = input.expected ?? NO_EXPECTATIONS;
  const thresholds = input.thresholds ?? DEFAULT_THRESHOLDS;
  const expectedByKey = new Map(expected.ports.map((p) => [`${p.device}/${p.port}`, p]));
  const isIgnored = (device: string, key: string) => expected.ignore.includes(device) || expected.ignore.includes(key);
  const peers = peerExpectations(input.reading, isIgnored);
  const ports: PortHealth[] = [];
  for (const device of input.reading.devices) {
    for (const port of device.ports) {
      ports.push(
        evaluatePort({
          device,
          port,
          counters: input.counters.get(port.key),
          expected: expectedByKey.get(port.key),
          peer: peers.get(port.key),
          ignored: isIgnored(device.name, port.key),
          thresholds,
          nowMs: input.nowMs,
        }),
      );
    }
  }
  const problems = fabricProblems(input.reading, ports, expected);
  return { atMs: input.nowMs, status: fabricStatus(ports, problems), ports, problems };
}

/**
 * Without configured expectations, an InfiniBand port is expected to run at
 * the widest width and fastest speed its up peers of the same HCA model run
 * at. Ethernet ports are left out: storage and management ports legitimately
 * differ (e.g. `2X NDR` bonds next to `4X NDR`).
 */
function peerExpectations(
  reading: FabricReading,
  isIgnored: (device: string, key: string) => boolean,
): Map<string, PortExpectation> {
  const groups = new Map<string, RdmaPortReading[]>();
  for (const d of reading.devices) {
    for (const p of d.ports) {
      if (p.linkLayer !== "InfiniBand" || !isPortUp(p) || !p.rate || isIgnored(d.name, p.key)) continue;
      const group = d.hcaType ?? "";
      groups.set(group, [...(groups.get(group) ?? []), p]);
    }
  }
  const result = new Map<string, PortExpectation>();
  for (const d of reading.devices) {
    const group = groups.get(d.hcaType ?? "") ?? [];
    if (group.length < 2) continue;
    let width = 0;
    let speed: IbSpeed = "SDR";
    for (const p of group) {
      const r = p.rate as LinkRate;
      width = Math.max(width, r.width);
      if (ibSpeedRank(r.speed) > ibSpeedRank(speed)) speed = r.speed;
    }
    for (const p of d.ports) if (p.linkLayer === "InfiniBand") result.set(p.key, { source: "peers", width, speed });
  }
  return result;
}

export interface EvaluatePortInput {
  device: RdmaDeviceReading;
  port: RdmaPortReading;
  counters: PortCounterView | undefined;
  expected: ExpectedPort | undefined;
  peer: PortExpectation | undefined;
  ignored: boolean;
  thresholds: HealthThresholds;
  nowMs: number;
}

export function evaluatePort(input: EvaluatePortInput): PortHealth {
  const { device, port, thresholds } = input;
  const reasons: HealthReason[] = [];
  const notes: string[] = [];
  const up = isPortUp(port);

  // Link state.
  if (port.state === undefined) {
    reasons.push({ code: "unreadable", severity: "critical", message: "port state could not be read" });
  } else if (port.state.id !== PORT_STATE_ACTIVE) {
    const hint = port.state.name === "INIT" || port.state.name === "ARMED" ? " (no subnet manager?)" : "";
    reasons.push({
      code: "state-not-active",
      severity: "critical",
      message: `state ${port.state.id}: ${port.state.name}${hint}`,
    });
  }
  if (port.physState === undefined) {
    if (port.state !== undefined)
      reasons.push({ code: "unreadable", severity: "critical", message: "physical state could not be read" });
  } else if (port.physState.id !== PHYS_STATE_LINK_UP) {
    const hint = port.physState.name === "Polling" ? " (no link partner: cable, transceiver or switch port)" : "";
    reasons.push({
      code: "phys-state-not-linkup",
      severity: "critical",
      message: `physical state ${port.physState.id}: ${port.physState.name}${hint}`,
    });
  }

  // What the port should be.
  const configured: PortExpectation | undefined = input.expected
    ? {
        source: "config",
        linkLayer: input.expected.linkLayer,
        minRateGbps: input.expected.minRateGbps,
        width: input.expected.width,
        speed: input.expected.speed,
      }
    : undefined;
  const expectation = mergeExpectation(configured, input.peer);
  if (
    expectation?.linkLayer !== undefined &&
    port.linkLayer !== undefined &&
    port.linkLayer !== expectation.linkLayer
  ) {
    reasons.push({
      code: "link-layer-mismatch",
      severity: "critical",
      message: `link layer ${port.linkLayer}, expected ${expectation.linkLayer}`,
    });
  }
  // A down port's rate is whatever the HCA last negotiated; judging it would repeat "down".
  if (up && expectation && port.rate) reasons.push(...rateReasons(port.rate, expectation));

  // User-space access.
  if (device.uverbs === undefined) {
    reasons.push({
      code: "no-uverbs",
      severity: "critical",
      message: `no uverbs device for ${device.name}: user space cannot use RDMA verbs on it`,
    });
  }
  if (port.linkLayer === "InfiniBand" && port.umad === undefined) {
    reasons.push({
      code: "no-umad",
      severity: "warning",
      message: `no umad device for ${port.key}: MAD tools and subnet queries cannot reach the port`,
    });
  }
  const link = device.pcieLink;
  if (
    link &&
    ((link.currentSpeedGTs !== undefined &&
      link.maxSpeedGTs !== undefined &&
      link.currentSpeedGTs < link.maxSpeedGTs) ||
      (link.currentWidth !== undefined && link.maxWidth !== undefined && link.currentWidth < link.maxWidth))
  ) {
    reasons.push({
      code: "pcie-downgraded",
      severity: "warning",
      message: `PCIe link ${link.currentSpeedGTs} GT/s x${link.currentWidth}, capable of ${link.maxSpeedGTs} GT/s x${link.maxWidth} (reseat the card?)`,
    });
  }

  // Counters.
  const errorRatesPerSec: Record<string, number> = {};
  let downEvents = 0;
  const view = input.counters;
  if (view) {
    const { history, change } = view;
    reasons.push(...counterReasons(port, view, thresholds, input.nowMs));
    downEvents = downEventsInWindow(history, thresholds.flap.windowMs, input.nowMs);
    if (downEvents >= thresholds.flap.minDownEvents) {
      reasons.push({
        code: "flapping",
        severity: "warning",
        message: `${downEvents} link-down events within ${formatWindow(thresholds.flap.windowMs)} (limit ${thresholds.flap.minDownEvents - 1})`,
        observed: downEvents,
        limit: thresholds.flap.minDownEvents - 1,
        windowMs: thresholds.flap.windowMs,
      });
    }
    for (const key of change.saturated) {
      const name = key.slice(key.indexOf("/") + 1);
      const width = counterWidthBits(key, history.sample.extended);
      if (key.startsWith("counters/") && PMA_ERROR_COUNTERS.has(name)) {
        reasons.push({
          code: "counter-saturated",
          severity: "warning",
          counter: name,
          message: `${name} is saturated at ${(1n << BigInt(width)) - 1n} (${width}-bit): further errors are invisible until the counters are cleared`,
        });
      } else {
        notes.push(`${name} is saturated (${width}-bit); its rate is not meaningful`);
      }
    }
    if (change.kind === "baseline") {
      notes.push(
        change.reason === "first-sample"
          ? "first sample: counter rates start with the next read"
          : change.reason === "reboot"
            ? "host rebooted since the last sample (boot id changed): counters re-baselined"
            : "clock went backwards since the last sample: counters re-baselined",
      );
    } else {
      if (change.resets.length > 0) {
        const names = change.resets.map((k) => k.slice(k.indexOf("/") + 1));
        notes.push(`counters reset since the last sample (cleared or driver reloaded): ${names.join(", ")}`);
      }
      for (const [key, rate] of Object.entries(change.ratesPerSec)) {
        const name = key.slice(key.indexOf("/") + 1);
        const isError = key.startsWith("counters/") ? PMA_ERROR_COUNTERS.has(name) : isHwErrorCounter(name);
        if (isError && rate > 0) errorRatesPerSec[name] = rate;
      }
    }
  } else {
    notes.push("counter rates unavailable (no snapshot history)");
  }

  return {
    key: port.key,
    device: device.name,
    port: port.port,
    linkLayer: port.linkLayer,
    role: input.expected?.role,
    ignored: input.ignored,
    verdict: verdictOf(reasons, up),
    reasons,
    notes,
    rate: port.rate,
    expected: expectation,
    traffic: view ? trafficFromChange(view.change) : undefined,
    errorRatesPerSec,
    downEvents,
  };
}

/** hw_counters that count faults or retries (reference §3.4), not traffic (`rx_*_requests`, CNPs). */
function isHwErrorCounter(name: string): boolean {
  return /err|retrans|timeout|slow_restart|out_of_|seq|icrc/.test(name);
}

/** Configured values win field by field; peers fill width and speed for InfiniBand. */
function mergeExpectation(
  configured: PortExpectation | undefined,
  peer: PortExpectation | undefined,
): PortExpectation | undefined {
  if (!configured) return peer;
  if (!peer) return configured;
  return {
    source: "config",
    linkLayer: configured.linkLayer,
    minRateGbps: configured.minRateGbps,
    width: configured.width ?? peer.width,
    speed: configured.speed ?? peer.speed,
  };
}

function rateReasons(rate: LinkRate, expected: PortExpectation): HealthReason[] {
  const reasons: HealthReason[] = [];
  const by = expected.source === "peers" ? "its InfiniBand peers run at" : "expected";
  if (expected.width !== undefined && rate.width < expected.width) {
    reasons.push({
      code: "width-below-expected",
      severity: "warning",
      message: `link width ${rate.width}X, ${by} ${expected.width}X (reseat cable or card)`,
      observed: rate.width,
      limit: expected.width,
    });
  }
  if (expected.speed !== undefined && ibSpeedRank(rate.speed) < ibSpeedRank(expected.speed)) {
    reasons.push({
      code: "speed-below-expected",
      severity: "warning",
      message: `link speed ${rate.speed}, ${by} ${expected.speed}`,
    });
  }
  if (expected.minRateGbps !== undefined && rate.rateGbps < expected.minRateGbps) {
    reasons.push({
      code: "rate-below-expected",
      severity: "warning",
      message: `rate ${rate.rateGbps} Gb/s, expected at least ${expected.minRateGbps} Gb/s`,
      observed: rate.rateGbps,
      limit: expected.minRateGbps,
    });
  }
  return reasons;
}

function counterReasons(
  port: RdmaPortReading,
  view: PortCounterView,
  thresholds: HealthThresholds,
  nowMs: number,
): HealthReason[] {
  const reasons: HealthReason[] = [];
  for (const t of thresholds.counters) {
    const key = t.source === "counters" ? pmaKey(t.counter) : hwKey(t.counter);
    const present = t.source === "counters" ? port.counters[t.counter] !== undefined : t.counter in port.hwCounters;
    if (!present) continue;
    const count = incrementsInWindow(view.history, view.change, key, t.windowMs, nowMs);
    if (count <= t.maxIncrements) continue;
    const shown = Number.isInteger(count) ? String(count) : count.toFixed(1);
    reasons.push({
      code: t.counter === "link_downed" ? "link-downed" : "error-rate",
      severity: t.severity,
      counter: t.counter,
      observed: count,
      limit: t.maxIncrements,
      windowMs: t.windowMs,
      message:
        t.maxIncrements === 0
          ? `${t.counter} rose by ${shown} within ${formatWindow(t.windowMs)}`
          : `${t.counter} ${shown} per ${formatWindow(t.windowMs)} (limit ${t.maxIncrements})`,
    });
  }
  return reasons;
}

const DOWN_CODES: ReadonlySet<ReasonCode> = new Set(["state-not-active", "phys-state-not-linkup", "unreadable"]);

function verdictOf(reasons: readonly HealthReason[], up: boolean | undefined): PortVerdict {
  if (up !== true || reasons.some((r) => DOWN_CODES.has(r.code))) return "down";
  if (reasons.some((r) => r.code === "flapping")) return "flapping";
  return reasons.length > 0 ? "degraded" : "healthy";
}

function fabricProblems(
  reading: FabricReading,
  ports: readonly PortHealth[],
  expected: ExpectedFabric,
): FabricProblem[] {
  const problems: FabricProblem[] = [];
  const present = new Set(ports.map((p) => p.key));
  for (const e of expected.ports) {
    const key = `${e.device}/${e.port}`;
    if (present.has(key)) continue;
    const deviceThere = reading.devices.some((d) => d.name === e.device);
    problems.push({
      code: "expected-port-missing",
      severity: "critical",
      subject: key,
      message: deviceThere
        ? `expected port ${key} is missing (${e.device} has no port ${e.port})`
        : `expected port ${key} is missing: no RDMA device ${e.device} (driver not loaded, card failed or renamed?)`,
    });
  }
  const portsByKey = new Map(reading.devices.flatMap((d) => d.ports.map((p) => [p.key, p] as const)));
  for (const rule of expected.rules) {
    const matching = ports.filter((h) => {
      const p = portsByKey.get(h.key);
      return (
        p !== undefined &&
        !h.ignored &&
        isPortUp(p) === true &&
        (rule.linkLayer === undefined || p.linkLayer === rule.linkLayer) &&
        (rule.minRateGbps === undefined || (p.rate !== undefined && p.rate.rateGbps >= rule.minRateGbps))
      );
    });
    if (matching.length >= rule.minPorts) continue;
    const atRate = rule.minRateGbps !== undefined ? ` at >= ${rule.minRateGbps} Gb/s` : "";
    problems.push({
      code: "too-few-ports",
      severity: "critical",
      subject: `${rule.linkLayer ?? "any"}${rule.minRateGbps !== undefined ? `>=${rule.minRateGbps}Gb/s` : ""}`,
      message: `only ${matching.length} ${rule.linkLayer ?? "RDMA"} port(s) are active${atRate}; expected at least ${rule.minPorts}`,
    });
  }
  return problems;
}

/** critical: a port down or an expectation unmet; degraded: a port degraded or flapping. */
export function fabricStatus(ports: readonly PortHealth[], problems: readonly FabricProblem[]): FabricStatus {
  const counted = ports.filter((p) => !p.ignored);
  if (problems.length > 0 || counted.some((p) => p.verdict === "down")) return "critical";
  if (counted.some((p) => p.verdict !== "healthy")) return "degraded";
  return "healthy";
}

/** `tessera fabric` exit status: 0 healthy, 1 degraded or flapping, 2 down or expectation unmet. */
export function exitCodeFor(status: FabricStatus): number {
  return status === "healthy" ? 0 : status === "degraded" ? 1 : 2;
}

export function formatWindow(ms: number): string {
  if (ms % HOUR_MS === 0) return ms === HOUR_MS ? "1 h" : `${ms / HOUR_MS} h`;
  if (ms % MINUTE_MS === 0) return ms === MINUTE_MS ? "1 min" : `${ms / MINUTE_MS} min`;
  if (ms % SECOND_MS === 0) return ms === SECOND_MS ? "1 s" : `${ms / SECOND_MS} s`;
  return `${ms} ms`;
}
