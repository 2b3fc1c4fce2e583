// Counter deltas between two samples of one port: widths, saturation, resets
// and reboots (reference/monitoring.md §3.3–3.4). Pure.
import type { RdmaPortReading } from "./read.js";

/**
 * PMA PortCounters widths (kernel `PORT_PMA_ATTR`). The narrow error counters
 * saturate at their maximum instead of wrapping (IBTA semantics), so a value
 * at the maximum is a lower bound and the real count is lost.
 */
export const PMA_COUNTER_WIDTH_BITS: Readonly<Record<string, number>> = {
  symbol_error: 16,
  link_error_recovery: 8,
  link_downed: 8,
  port_rcv_errors: 16,
  port_rcv_remote_physical_errors: 16,
  port_rcv_switch_relay_errors: 16,
  port_xmit_discards: 16,
  port_xmit_constraint_errors: 8,
  port_rcv_constraint_errors: 8,
  local_link_integrity_errors: 4,
  excessive_buffer_overrun_errors: 4,
  VL15_dropped: 16,
  port_xmit_wait: 32,
};

/** Data/packet counters: 32-bit PortCounters, or 64-bit when the HCA supports PortCountersExtended. */
const DATA_COUNTERS = new Set(["port_xmit_data", "port_rcv_data", "port_xmit_packets", "port_rcv_packets"]);

/** PMA counters that count faults (as opposed to traffic or congestion ticks). */
export const PMA_ERROR_COUNTERS: ReadonlySet<string> = new Set(
  Object.keys(PMA_COUNTER_WIDTH_BITS).filter((c) => c !== "port_xmit_wait"),
);

/** `port_xmit_data`/`port_rcv_data` count 4-octet words. */
export const DATA_COUNTER_UNIT_BYTES = 4;

/** Keys name the directory too: `counters/symbol_error`, `hw_counters/rnr_nak_retry_err`. */
export type CounterKey = string;

export function pmaKey(name: string): CounterKey {
  return `counters/${name}`;
}

export function hwKey(name: string): CounterKey {
  return `hw_counters/${name}`;
}

/** Width of a counter in bits; hw_counters and unknown PMA counters are u64. */
export function counterWidthBits(key: CounterKey, extended: boolean): number {
  if (!key.startsWith("counters/")) return 64;
  const name = key.slice("counters/".length);
  if (DATA_COUNTERS.has(name)) return extended ? 64 : 32;
  return PMA_COUNTER_WIDTH_BITS[name] ?? 64;
}

export function counterMax(widthBits: number): bigint {
  return (1n << BigInt(widthBits)) - 1n;
}

/** A narrow counter sitting at its maximum has stopped counting. */
export function isSaturated(value: bigint, widthBits: number): boolean {
  return widthBits < 64 && value >= counterMax(widthBits);
}

export interface CounterSample {
  /** Wall-clock time of the read (survives restarts, unlike a monotonic clock). */
  atMs: number;
  /** Kernel boot id at the read; undefined when it could not be read. */
  bootId: string | undefined;
  extended: boolean;
  values: Record<CounterKey, bigint>;
}

export function sampleFromPort(port: RdmaPortReading, atMs: number, bootId: string | undefined): CounterSample {
  const values: Record<CounterKey, bigint> = {};
  for (const [name, value] of Object.entries(port.counters)) if (value !== undefined) values[pmaKey(name)] = value;
  for (const [name, value] of Object.entries(port.hwCounters)) values[hwKey(name)] = value;
  return { atMs, bootId, extended: port.extendedCounters, values };
}

export type BaselineReason = "first-sample" | "reboot" | "clock-went-backwards";

export type CounterChange =
  | {
      /** No rates this time: the current sample becomes the baseline. */
      kind: "baseline";
      reason: BaselineReason;
      saturated: CounterKey[];
    }
  | {
      kind: "interval";
      intervalMs: number;
      /** Increments since the previous sample (a lower bound for reset or saturated counters). */
      deltas: Record<CounterKey, bigint>;
      ratesPerSec: Record<CounterKey, number>;
      /** Counters that went down: cleared (`perfquery -R`, `ibqueryerrors -K`) or a driver reload. */
      resets: CounterKey[];
      saturated: CounterKey[];
    };

/**
 * Compares two samples of the same port. A changed boot id means a reboot:
 * the counters restarted with the host and the interval spans downtime, so
 * the sample is a new baseline rather than a "reset". A counter that went
 * down within one boot was reset; it has counted at least its current value
 * since, so that value is the delta.
 */
export function diffCounters(prev: CounterSample | undefined, curr: CounterSample): CounterChange {
  const saturated = Object.keys(curr.values).filter((k) =>
    isSaturated(curr.values[k] as bigint, counterWidthBits(k, curr.extended)),
  );
  if (prev === undefined) return { kind: "baseline", reason: "first-sample", saturated };
  if (prev.bootId !== undefined && curr.bootId !== undefined && prev.bootId !== curr.bootId) {
    return { kind: "baseline", reason: "reboot", saturated };
  }
  const intervalMs = curr.atMs - prev.atMs;
  if (intervalMs <= 0) return { kind: "baseline", reason: "clock-went-backwards", saturated };
  const deltas: Record<CounterKey, bigint> = {};
  const ratesPerSec: Record<CounterKey, number> = {};
  const resets: CounterKey[] = [];
  for (const [key, value] of Object.entries(curr.values)) {
    const before = prev.values[key];
    if (before === undefined) continue;
    let delta = value - before;
    if (delta < 0n) {
      resets.push(key);
      delta = value;
    }
    deltas[key] = delta;
    ratesPerSec[key] = (Number(delta) * 1000) / intervalMs;
  }
  return { kind: "interval", intervalMs, deltas, ratesPerSec, resets, saturated };
}

export interface PortTraffic {
  xmitGbps: number;
  rcvGbps: number;
}

/** Data rates from the 4-octet data counters; undefined without an interval. */
export function trafficFromChange(change: CounterChange): PortTraffic | undefined {
  if (change.kind !== "interval") return undefined;
  const gbps = (key: string) => ((change.ratesPerSec[key] ?? 0) * DATA_COUNTER_UNIT_BYTES * 8) / 1e9;
  if (!(pmaKey("port_xmit_data") in change.ratesPerSec) && !(pmaKey("port_rcv_data") in change.ratesPerSec)) {
    return undefined;
  }
  return { xmitGbps: gbps(pmaKey("port_xmit_data")), rcvGbps: gbps(pmaKey("port_rcv_data")) };
}
