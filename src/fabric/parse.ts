// Pure parsers for the kernel's InfiniBand / PCI sysfs formats
// (reference/monitoring.md §3.2). Every parser accepts the text exactly as
// read (with or without the trailing newline: real captures show both) and
// throws SysfsParseError on anything the kernel would not print.
import { TesseraError } from "../errors.js";

export class SysfsParseError extends TesseraError {
  readonly what: string;
  readonly text: string;

  constructor(what: string, text: string) {
    super(
      "TESSERA_SYSFS_PARSE",
      `cannot parse ${what} from ${JSON.stringify(text.length > 80 ? `${text.slice(0, 80)}…` : text)}`,
    );
    this.what = what;
    this.text = text;
  }
}

/** Strips the single trailing newline the kernel's `sysfs_emit` adds (if present). */
export function chomp(text: string): string {
  let end = text.length;
  while (end > 0 && (text.charCodeAt(end - 1) === 10 || text.charCodeAt(end - 1) === 13)) end--;
  return end === text.length ? text : text.slice(0, end);
}

// ── port state / physical state ──────────────────────────────────────────

/** `ib_port_state` numbering (kernel `state_show`). */
export const PORT_STATE_NAMES = ["NOP", "DOWN", "INIT", "ARMED", "ACTIVE", "ACTIVE_DEFER"] as const;
export type PortStateName = (typeof PORT_STATE_NAMES)[number] | "UNKNOWN";
export const PORT_STATE_ACTIVE = 4;

export interface PortState {
  id: number;
  name: PortStateName;
}

/** `state`: `"%d: %s\n"`, e.g. `4: ACTIVE`. */
export function parsePortState(text: string): PortState {
  const m = /^(\d+): ([A-Z_]+)$/.exec(chomp(text));
  if (!m) throw new SysfsParseError("port state", text);
  const id = Number(m[1]);
  const name = m[2] as string;
  const known = PORT_STATE_NAMES[id];
  // The kernel prints UNKNOWN for ids outside its table; any other
  // id/name pairing means the file is not what we think it is.
  if (known !== undefined ? name !== known : name !== "UNKNOWN") throw new SysfsParseError("port state", text);
  return { id, name: name as PortStateName };
}

/** `ib_port_phys_state` numbering (kernel `phys_state_to_str`). */
export const PHYS_STATE_NAMES = [
  "<unknown>",
  "Sleep",
  "Polling",
  "Disabled",
  "PortConfigurationTraining",
  "LinkUp",
  "LinkErrorRecovery",
  "Phy Test",
] as const;
export type PhysStateName = (typeof PHYS_STATE_NAMES)[number];
export const PHYS_STATE_LINK_UP = 5;

export interface PhysState {
  id: number;
  name: PhysStateName;
}

/** `phys_state`: `"%u: %s\n"`, e.g. `5: LinkUp`, `7: Phy Test`. */
export function parsePhysState(text: string): PhysState {
  const m = /^(\d+): (.+)$/.exec(chomp(text));
  if (!m) throw new SysfsParseError("physical state", text);
  const id = Number(m[1]);
  const name = m[2] as string;
  // Out-of-table ids print "<unknown>" as well.
  const expected = PHYS_STATE_NAMES[id] ?? "<unknown>";
  if (name !== expected) throw new SysfsParseError("physical state", text);
  return { id, name: expected };
}

// ── rate ─────────────────────────────────────────────────────────────────

/** Per-lane signalling rates the kernel's `rate_show` uses, in Gb/s. */
export const IB_LANE_RATE_GBPS = {
  SDR: 2.5,
  DDR: 5,
  QDR: 10,
  FDR10: 10,
  FDR: 14,
  EDR: 25,
  HDR: 50,
  NDR: 100,
  XDR: 200,
} as const;
export type IbSpeed = keyof typeof IB_LANE_RATE_GBPS;
export const IB_WIDTHS = [1, 2, 4, 8, 12] as const;

export function isIbSpeed(value: string): value is IbSpeed {
  return Object.hasOwn(IB_LANE_RATE_GBPS, value);
}

/** Orders speeds for "is this slower than expected" (FDR10 ranks with QDR, its kernel rate). */
export function ibSpeedRank(speed: IbSpeed): number {
  return IB_LANE_RATE_GBPS[speed];
}

export interface LinkRate {
  /** The leading number, e.g. 400, 2.5, 56. */
  rateGbps: number;
  /** Lanes: 1, 2, 4, 8 or 12 (the `4X` part). */
  width: number;
  speed: IbSpeed;
}

/**
 * `rate`: `"%d%s Gb/sec (%dX%s)\n"`, e.g. `400 Gb/sec (4X NDR)`, `2.5 Gb/sec (1X SDR)`.
 * Kernels before 4.x printed SDR without a name (`10 Gb/sec (4X)`).
 */
export function parseRate(text: string): LinkRate {
  const m = /^(\d+)(\.5)? Gb\/sec \((\d+)X(?: ([A-Z0-9]+))?\)$/.exec(chomp(text));
  if (!m) throw new SysfsParseError("rate", text);
  const width = Number(m[3]);
  const speed = m[4] ?? "SDR";
  if (!(IB_WIDTHS as readonly number[]).includes(width) || !isIbSpeed(speed)) throw new SysfsParseError("rate", text);
  return { rateGbps: Number(m[1]) + (m[2] ? 0.5 : 0), width, speed };
}

export function formatRate(rate: LinkRate): string {
  return `${rate.rateGbps} Gb/sec (${rate.width}X ${rate.speed})`;
}

// ── scalar attributes ─────────────────────────────────────────────────────

export type LinkLayer = "InfiniBand" | "Ethernet" | "Unknown";

export function parseLinkLayer(text: string): LinkLayer {
  const v = chomp(text);
  if (v === "InfiniBand" || v === "Ethernet" || v === "Unknown") return v;
  throw new SysfsParseError("link layer", text);
}

/** `lid`, `sm_lid`, `cap_mask`, `pkeys/<i>`, PCI `vendor`/`device`/`class`: `0x…` hex. */
export function parseHex(text: string, what = "hex number"): number {
  const m = /^0x([0-9a-fA-F]{1,8})$/.exec(chomp(text));
  if (!m) throw new SysfsParseError(what, text);
  return Number.parseInt(m[1] as string, 16);
}

/** `lid_mask_count`, `sm_sl`, `current_link_width`, `port`: decimal. */
export function parseDecimal(text: string, what = "decimal number"): number {
  const m = /^-?\d{1,15}$/.exec(chomp(text));
  if (!m) throw new SysfsParseError(what, text);
  return Number(m[0]);
}

/** `numa_node`: `-1` (no affinity, e.g. single-socket or VMs) becomes undefined. */
export function parseNumaNode(text: string): number | undefined {
  const n = parseDecimal(text, "NUMA node");
  if (n < -1) throw new SysfsParseError("NUMA node", text);
  return n < 0 ? undefined : n;
}

/**
 * A PMA or hw counter: `%llu`, or `N/A (no PMA)` where an older kernel's
 * MAD to the port failed (returned as undefined: absent, never zero).
 */
export function parseCounter(text: string): bigint | undefined {
  const v = chomp(text);
  if (v === "N/A (no PMA)") return undefined;
  if (!/^\d{1,20}$/.test(v)) throw new SysfsParseError("counter", text);
  const n = BigInt(v);
  if (n > 0xffff_ffff_ffff_ffffn) throw new SysfsParseError("counter", text);
  return n;
}

export type GidType = "IB/RoCE v1" | "RoCE v2";

/** `gid_attrs/types/<i>`. */
export function parseGidType(text: string): GidType {
  const v = chomp(text);
  if (v === "IB/RoCE v1" || v === "RoCE v2") return v;
  throw new SysfsParseError("GID type", text);
}

/** `gids/<i>`: `%pI6`, eight groups of four lower-case hex digits. */
export function parseGid(text: string): string {
  const v = chomp(text);
  if (!/^[0-9a-f]{4}(?::[0-9a-f]{4}){7}$/.test(v)) throw new SysfsParseError("GID", text);
  return v;
}

/** `node_type`: `"%d: %s\n"`, e.g. `1: CA`. */
export function parseNodeType(text: string): string {
  const m = /^\d+: (\S+)$/.exec(chomp(text));
  if (!m) throw new SysfsParseError("node type", text);
  return m[1] as string;
}

/** Free-form one-line strings (`fw_ver`, `board_id`, `hca_type`, `ibdev`); empty is absent. */
export function parseString(text: string): string | undefined {
  const v = chomp(text).trim();
  return v === "" ? undefined : v;
}

/** PCI `current_link_speed`: `"16.0 GT/s PCIe"` (older kernels: `"8 GT/s"`); `Unknown` is absent. */
export function parsePcieSpeed(text: string): number | undefined {
  const v = chomp(text);
  if (v === "Unknown" || v === "Unknown speed") return undefined;
  const m = /^(\d+(?:\.\d+)?) GT\/s(?: PCIe)?$/.exec(v);
  if (!m) throw new SysfsParseError("PCIe link speed", text);
  return Number(m[1]);
}

// ── PCI addresses ─────────────────────────────────────────────────────────

export interface PciAddress {
  domain: number;
  bus: number;
  device: number;
  function: number;
}

/**
 * Accepts sysfs form (`0000:1b:00.0`), NVML form (`00000000:1B:00.0`) and
 * NVML's legacy form (`0000:1B:00.0`). Domains above 0xffff (VMD) are kept.
 */
export function parsePciAddress(text: string): PciAddress {
  const m = /^([0-9a-fA-F]{4,8}):([0-9a-fA-F]{2}):([0-9a-fA-F]{2})\.([0-7])$/.exec(chomp(text).trim());
  if (!m) throw new SysfsParseError("PCI address", text);
  const address = {
    domain: Number.parseInt(m[1] as string, 16),
    bus: Number.parseInt(m[2] as string, 16),
    device: Number.parseInt(m[3] as string, 16),
    function: Number(m[4]),
  };
  if (address.device > 0x1f) throw new SysfsParseError("PCI address", text);
  return address;
}

/** Sysfs form: `0000:1b:00.0` (what `/sys/bus/pci/devices/` is named by). */
export function formatSysfsPciAddress(a: PciAddress): string {
  const hex = (n: number, w: number) => n.toString(16).padStart(w, "0");
  return `${hex(a.domain, 4)}:${hex(a.bus, 2)}:${hex(a.device, 2)}.${a.function}`;
}

/** NVML form: `00000000:1B:00.0` (`nvmlPciInfo_t.busId`). */
export function formatNvmlBusId(a: PciAddress): string {
  const hex = (n: number, w: number) => n.toString(16).toUpperCase().padStart(w, "0");
  return `${hex(a.domain, 8)}:${hex(a.bus, 2)}:${hex(a.device, 2)}.${a.function}`;
}

/** Any accepted form → sysfs form. */
export function toSysfsPciAddress(busId: string): string {
  return formatSysfsPciAddress(parsePciAddress(busId));
}

/** Any accepted form → NVML form. */
export function toNvmlBusId(address: string): string {
  return formatNvmlBusId(parsePciAddress(address));
}
