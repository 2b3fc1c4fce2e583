// GPU↔NIC distance from PCI paths, the way NCCL computes it
// (reference/monitoring.md §4.2–4.3), with nvidia-smi's NODE level added
// for host bridges on the same NUMA node. Pure over path strings, plus a
// thin resolver for GPU paths under a sysfs root.
import type { GpuDescription } from "./gpu-source.js";
import type { FabricHealth, PortHealth } from "./health.js";
import { parseNumaNode, toSysfsPciAddress } from "./parse.js";
import type { FabricReading } from "./read.js";
import { naturalCompare, SysfsFiles } from "./sysfs-files.js";

/** nvidia-smi `topo -m` levels for PCIe paths, nearest first. */
export const PCI_DISTANCES = ["PIX", "PXB", "PHB", "NODE", "SYS"] as const;
export type PciDistance = (typeof PCI_DISTANCES)[number];

/** NCCL enables GPUDirect RDMA up to this level by default (`NCCL_NET_GDR_LEVEL`). */
export const GDR_MAX_DISTANCE: PciDistance = "PXB";

export function distanceRank(d: PciDistance): number {
  return PCI_DISTANCES.indexOf(d);
}

export interface PciLocation {
  /** Canonical sysfs path: `/devices/pci0000:15/0000:15:01.0/…/0000:1b:00.0` (root prefix optional). */
  path: string;
  numaNode: number | undefined;
}

export interface PciPathParts {
  /** `pci0000:15`: the host bridge (root complex). */
  rootComplex: string;
  /** PCI functions from the root port down to the device itself. */
  functions: string[];
}

const ROOT_COMPLEX = /^pci[0-9a-f]{4,8}:[0-9a-f]{2}$/;
const BDF = /^[0-9a-f]{4,8}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$/;

/** Splits a canonical PCI path; undefined for virtual devices or anything else. */
export function splitPciPath(path: string): PciPathParts | undefined {
  const segments = path.split("/").filter((s) => s !== "");
  const at = segments.findIndex((s) => ROOT_COMPLEX.test(s));
  if (at < 0) return undefined;
  const functions = segments.slice(at + 1);
  if (functions.length === 0 || !functions.every((f) => BDF.test(f))) return undefined;
  return { rootComplex: segments[at] as string, functions };
}

/**
 * NCCL's PCI parents of a device, nearest first (xml.cc `getPciPath` walk):
 * going up two levels at a time skips each switch's downstream port, so one
 * PCIe switch (upstream port plus downstream ports) is one node; a walk that
 * reaches the root complex stops at the CPU.
 */
export function switchAncestors(functions: readonly string[]): string[] {
  const ancestors: string[] = [];
  for (let i = functions.length - 3; i >= 0; i -= 2) ancestors.push(functions[i] as string);
  return ancestors;
}

/**
 * PIX: both hang off the same switch (at most one PCIe bridge between them);
 * PXB: a deeper common switch; PHB: only the host bridge is shared; NODE:
 * different host bridges on one NUMA node; SYS: across NUMA nodes. Unknown
 * NUMA on both sides counts as the same node (single-socket hosts report -1).
 */
export function pciDistance(a: PciLocation, b: PciLocation): PciDistance | undefined {
  const pa = splitPciPath(a.path);
  const pb = splitPciPath(b.path);
  if (!pa || !pb) return undefined;
  if (pa.rootComplex !== pb.rootComplex) return a.numaNode === b.numaNode ? "NODE" : "SYS";
  const ua = switchAncestors(pa.functions);
  const ub = switchAncestors(pb.functions);
  for (let i = 0; i < ua.length; i++) {
    const j = ub.indexOf(ua[i] as string);
    if (j >= 0) return i === 0 && j === 0 ? "PIX" : "PXB";
  }
  return "PHB";
}

export interface GpuLocation extends GpuDescription {
  /** Sysfs form of `pciBusId`. */
  pciAddress: string;
  pciPath: string | undefined;
  numaNode: number | undefined;
}

export interface NicLocation {
  device: string;
  pciAddress: string;
  pciPath: string;
  numaNode: number | undefined;
  /** At least one of its counted ports is healthy. */
  healthy: boolean;
  /** Considered for "nearest NIC" (compute ports when roles are configured). */
  candidate: boolean;
}

export interface NicDistance {
  device: string;
  distance: PciDistance | undefined;
}

export interface GpuNicAffinity {
  index: number;
  uuid: string | undefined;
  pciBusId: string;
  pciAddress: string;
  numaNode: number | undefined;
  /** One entry per NIC, in the order of `FabricTopology.nics`. */
  distances: NicDistance[];
  nearestHealthyNic: { device: string; distance: PciDistance } | undefined;
  /** NCCL will use GPUDirect RDMA through the nearest healthy NIC. */
  gpuDirectRdma: boolean;
  /** Why this GPU is flagged; undefined when it is not. */
  flag: string | undefined;
}

export interface FabricTopology {
  nics: NicLocation[];
  gpus: GpuNicAffinity[];
}

/** For every GPU: its distance to every NIC and its nearest healthy candidate NIC. */
export function computeTopology(gpus: readonly GpuLocation[], nics: readonly NicLocation[]): FabricTopology {
  const result: GpuNicAffinity[] = gpus.map((gpu) => {
    const distances = nics.map((nic) => ({
      device: nic.device,
      distance: gpu.pciPath
        ? pciDistance({ path: gpu.pciPath, numaNode: gpu.numaNode }, { path: nic.pciPath, numaNode: nic.numaNode })
        : undefined,
    }));
    let nearest: { device: string; distance: PciDistance } | undefined;
    nics.forEach((nic, i) => {
      const d = distances[i]?.distance;
      if (!nic.healthy || !nic.candidate || d === undefined) return;
      if (!nearest || distanceRank(d) < distanceRank(nearest.distance)) nearest = { device: nic.device, distance: d };
    });
    const gpuDirectRdma = nearest !== undefined && distanceRank(nearest.distance) <= distanceRank(GDR_MAX_DISTANCE);
    let flag: string | undefined;
    if (!gpu.pciPath) flag = `PCI device ${gpu.pciAddress} not found in sysfs`;
    else if (!nearest) flag = "no healthy NIC";
    else if (!gpuDirectRdma)
      flag = `nearest healthy NIC ${nearest.device} is ${nearest.distance}: GPUDirect RDMA needs ${GDR_MAX_DISTANCE} or closer`;
    return {
      index: gpu.index,
      uuid: gpu.uuid,
      pciBusId: gpu.pciBusId,
      pciAddress: gpu.pciAddress,
      numaNode: gpu.numaNode,
      distances,
      nearestHealthyNic: nearest,
      gpuDirectRdma,
      flag,
    };
  });
  return { nics: [...nics], gpus: result };
}

/**
 * NICs from a reading and its health. A device is healthy when one of its
 * counted ports is; when the expectations give ports roles, only devices
 * with a compute port are candidates (storage NICs do not carry NCCL traffic).
 */
export function nicLocations(reading: FabricReading, health: FabricHealth): NicLocation[] {
  const byDevice = new Map<string, PortHealth[]>();
  for (const p of health.ports) byDevice.set(p.device, [...(byDevice.get(p.device) ?? []), p]);
  const rolesGiven = health.ports.some((p) => p.role !== undefined);
  const nics: NicLocation[] = [];
  for (const d of reading.devices) {
    if (!d.pciAddress || !d.pciPath) continue;
    const ports = byDevice.get(d.name) ?? [];
    nics.push({
      device: d.name,
      pciAddress: d.pciAddress,
      pciPath: d.pciPath,
      numaNode: d.numaNode,
      healthy: ports.some((p) => !p.ignored && p.verdict === "healthy"),
      candidate: !rolesGiven || ports.some((p) => p.role === "compute"),
    });
  }
  return nics.sort((a, b) => naturalCompare(a.device, b.device));
}

/** Resolves each GPU's PCI path and NUMA node under the sysfs root (`bus/pci/devices/<addr>`). */
export function locateGpus(sysfsRoot: string, gpus: readonly GpuDescription[]): GpuLocation[] {
  const files = new SysfsFiles(sysfsRoot);
  return gpus.map((gpu) => {
    const pciAddress = toSysfsPciAddress(gpu.pciBusId);
    const pciPath = files.resolve(`bus/pci/devices/${pciAddress}`);
    return {
      ...gpu,
      pciAddress,
      pciPath,
      numaNode: pciPath ? files.parse(`bus/pci/devices/${pciAddress}/numa_node`, parseNumaNode) : undefined,
    };
  });
}
