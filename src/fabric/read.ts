// Thin reader of /sys/class/infiniband and friends (reference/monitoring.md
// §3.1). It only finds files and hands their text to the pure parsers in
// parse.ts; every decision is made elsewhere.
import { performance } from "node:perf_hooks";
import { TesseraError } from "../errors.js";
import {
  type GidType,
  type LinkLayer,
  type LinkRate,
  type PhysState,
  type PortState,
  parseCounter,
  parseDecimal,
  parseGid,
  parseGidType,
  parseHex,
  parseLinkLayer,
  parseNodeType,
  parseNumaNode,
  parsePcieSpeed,
  parsePhysState,
  parsePortState,
  parseRate,
  parseString,
} from "./parse.js";
import { type ReadProblem, SysfsFiles } from "./sysfs-files.js";

export const DEFAULT_SYSFS_ROOT = "/sys";
export const DEFAULT_PROC_ROOT = "/proc";

/** At most this many `gid_attrs/types/<i>` are read per port: RoCE tables have 255 entries, the types repeat. */
const MAX_GID_TYPES_READ = 16;

export interface PcieLinkStatus {
  currentSpeedGTs: number | undefined;
  currentWidth: number | undefined;
  maxSpeedGTs: number | undefined;
  maxWidth: number | undefined;
}

export interface RdmaPortReading {
  device: string;
  port: number;
  /** `mlx5_0/1`: the port's identity in snapshots, events and configs. */
  key: string;
  state: PortState | undefined;
  physState: PhysState | undefined;
  rate: LinkRate | undefined;
  linkLayer: LinkLayer | undefined;
  lid: number | undefined;
  smLid: number | undefined;
  lmc: number | undefined;
  smSl: number | undefined;
  capMask: number | undefined;
  defaultGid: string | undefined;
  gidTypes: GidType[];
  /** `gid_attrs/ndevs/0`: the netdev a RoCE port's GIDs belong to. */
  gidNetdev: string | undefined;
  /** `umadN` registered for this port, if any. */
  umad: string | undefined;
  /** PMA `counters/*`; undefined values are `N/A (no PMA)`. */
  counters: Record<string, bigint | undefined>;
  /** Driver `hw_counters/*` (u64), without `lifespan`. */
  hwCounters: Record<string, bigint>;
  hwCountersLifespanMs: number | undefined;
  /** The HCA answered PortCountersExtended: data/packet counters are 64-bit. */
  extendedCounters: boolean;
}

export interface RdmaDeviceReading {
  name: string;
  hcaType: string | undefined;
  fwVersion: string | undefined;
  boardId: string | undefined;
  nodeGuid: string | undefined;
  nodeType: string | undefined;
  /** Sysfs form, e.g. `0000:18:00.0`; undefined for virtual devices (rxe, siw). */
  pciAddress: string | undefined;
  /** Canonical PCI path relative to the root: `/devices/pci0000:15/…/0000:18:00.0`. */
  pciPath: string | undefined;
  numaNode: number | undefined;
  pcieLink: PcieLinkStatus | undefined;
  netdevs: string[];
  /** `uverbsN` of this device; undefined means user space cannot open it. */
  uverbs: string | undefined;
  ports: RdmaPortReading[];
}

export interface FabricReading {
  sysfsRoot: string;
  devices: RdmaDeviceReading[];
  /** Files that existed but could not be read or parsed. */
  problems: ReadProblem[];
  durationMs: number;
}

export interface ReadFabricOptions {
  sysfsRoot?: string;
}

/** The root has no `class/`: a typo or an unmounted sysfs must not read as "no NICs, all healthy". */
export class SysfsRootError extends TesseraError {
  constructor(root: string) {
    super("TESSERA_SYSFS_ROOT", `${root} does not look like a sysfs root (no class/ directory)`);
  }
}

/** One full read of every RDMA device and port under the root. Throws SysfsRootError. */
export function readFabric(options: ReadFabricOptions = {}): FabricReading {
  const started = performance.now();
  const files = new SysfsFiles(options.sysfsRoot ?? DEFAULT_SYSFS_ROOT);
  if (!files.exists("class")) throw new SysfsRootError(files.root);
  const uverbsByDevice = readUverbs(files);
  const umadByPort = readUmad(files);
  const devices = files
    .list("class/infiniband")
    .map((name) => readDevice(files, name, uverbsByDevice.get(name), umadByPort));
  return {
    sysfsRoot: files.root,
    devices,
    problems: files.problems,
    durationMs: performance.now() - started,
  };
}

function readUverbs(files: SysfsFiles): Map<string, string> {
  const byDevice = new Map<string, string>();
  for (const entry of files.list("class/infiniband_verbs")) {
    if (!/^uverbs\d+$/.test(entry)) continue;
    const ibdev = files.parse(`class/infiniband_verbs/${entry}/ibdev`, parseString);
    if (ibdev !== undefined) byDevice.set(ibdev, entry);
  }
  return byDevice;
}

function readUmad(files: SysfsFiles): Map<string, string> {
  const byPort = new Map<string, string>();
  for (const entry of files.list("class/infiniband_mad")) {
    if (!/^umad\d+$/.test(entry)) continue;
    const ibdev = files.parse(`class/infiniband_mad/${entry}/ibdev`, parseString);
    const port = files.parse(`class/infiniband_mad/${entry}/port`, parseDecimal);
    if (ibdev !== undefined && port !== undefined) byPort.set(`${ibdev}/${port}`, entry);
  }
  return byPort;
}

function readDevice(
  files: SysfsFiles,
  name: string,
  uverbs: string | undefined,
  umadByPort: ReadonlyMap<string, string>,
): RdmaDeviceReading {
  const dir = `class/infiniband/${name}`;
  const pciPath = files.resolve(`${dir}/device`);
  const last = pciPath?.slice(pciPath.lastIndexOf("/") + 1);
  const pciAddress =
    last !== undefined && /^[0-9a-f]{4,8}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$/.test(last) ? last : undefined;
  const ports = files
    .list(`${dir}/ports`)
    .filter((p) => /^\d+$/.test(p))
    .map((p) => readPort(files, name, Number(p), umadByPort.get(`${name}/${p}`)));
  return {
    name,
    hcaType: files.parse(`${dir}/hca_type`, parseString),
    fwVersion: files.parse(`${dir}/fw_ver`, parseString),
    boardId: files.parse(`${dir}/board_id`, parseString),
    nodeGuid: files.parse(`${dir}/node_guid`, parseString),
    nodeType: files.parse(`${dir}/node_type`, parseNodeType),
    pciAddress,
    pciPath: pciAddress ? pciPath : undefined,
    numaNode: pciAddress ? files.parse(`${dir}/device/numa_node`, parseNumaNode) : undefined,
    pcieLink: pciAddress ? readPcieLink(files, `${dir}/device`) : undefined,
    netdevs: pciAddress ? files.list(`${dir}/device/net`) : [],
    uverbs,
    ports,
  };
}

function readPcieLink(files: SysfsFiles, dir: string): PcieLinkStatus | undefined {
  const link: PcieLinkStatus = {
    currentSpeedGTs: files.parse(`${dir}/current_link_speed`, parsePcieSpeed),
    currentWidth: files.parse(`${dir}/current_link_width`, parseDecimal),
    maxSpeedGTs: files.parse(`${dir}/max_link_speed`, parsePcieSpeed),
    maxWidth: files.parse(`${dir}/max_link_width`, parseDecimal),
  };
  return Object.values(link).every((v) => v === undefined) ? undefined : link;
}

function readPort(files: SysfsFiles, device: string, port: number, umad: string | undefined): RdmaPortReading {
  const dir = `class/infiniband/${device}/ports/${port}`;
  const counters: Record<string, bigint | undefined> = {};
  const counterNames = files.list(`${dir}/counters`, false);
  for (const c of counterNames) {
    const text = files.read(`${dir}/counters/${c}`);
    if (text === undefined) continue;
    try {
      counters[c] = parseCounter(text);
    } catch (err) {
      files.report(`${dir}/counters/${c}`, (err as Error).message);
    }
  }
  const hwCounters: Record<string, bigint> = {};
  let hwCountersLifespanMs: number | undefined;
  for (const c of files.list(`${dir}/hw_counters`, false)) {
    if (c === "lifespan") {
      hwCountersLifespanMs = files.parse(`${dir}/hw_counters/lifespan`, parseDecimal);
      continue;
    }
    const value = files.parse(`${dir}/hw_counters/${c}`, parseCounter);
    if (value !== undefined) hwCounters[c] = value;
  }
  const gidTypes = new Set<GidType>();
  const typeEntries = files.list(`${dir}/gid_attrs/types`).slice(0, MAX_GID_TYPES_READ);
  for (const i of typeEntries) {
    // Unpopulated GID slots answer EINVAL; those are not problems.
    const type = silently(files, () => files.parse(`${dir}/gid_attrs/types/${i}`, parseGidType));
    if (type) gidTypes.add(type);
  }
  return {
    device,
    port,
    key: `${device}/${port}`,
    state: files.parse(`${dir}/state`, parsePortState),
    physState: files.parse(`${dir}/phys_state`, parsePhysState),
    rate: files.parse(`${dir}/rate`, parseRate),
    linkLayer: files.parse(`${dir}/link_layer`, parseLinkLayer),
    lid: files.parse(`${dir}/lid`, (t) => parseHex(t, "LID")),
    smLid: files.parse(`${dir}/sm_lid`, (t) => parseHex(t, "SM LID")),
    lmc: files.parse(`${dir}/lid_mask_count`, parseDecimal),
    smSl: files.parse(`${dir}/sm_sl`, parseDecimal),
    capMask: files.parse(`${dir}/cap_mask`, (t) => parseHex(t, "capability mask")),
    defaultGid: silently(files, () => files.parse(`${dir}/gids/0`, parseGid)),
    gidTypes: [...gidTypes],
    gidNetdev: silently(files, () => files.parse(`${dir}/gid_attrs/ndevs/0`, parseString)),
    umad,
    counters,
    hwCounters,
    hwCountersLifespanMs,
    // unicast_* only exist when the HCA advertises IB_PMA_CLASS_CAP_EXT_WIDTH.
    extendedCounters: counterNames.includes("unicast_xmit_packets") || counterNames.includes("unicast_rcv_packets"),
  };
}

/** Runs a read whose failures are expected (unpopulated GID slots) without recording problems. */
function silently<T>(files: SysfsFiles, read: () => T): T {
  const before = files.problems.length;
  const value = read();
  files.problems.length = before;
  return value;
}

/** `<procRoot>/sys/kernel/random/boot_id`, lower-cased; undefined when absent or malformed. */
export function readBootId(procRoot: string = DEFAULT_PROC_ROOT): string | undefined {
  const files = new SysfsFiles(procRoot);
  const text = files.read("sys/kernel/random/boot_id");
  const id = text?.trim().toLowerCase();
  return id !== undefined && /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(id) ? id : undefined;
}
