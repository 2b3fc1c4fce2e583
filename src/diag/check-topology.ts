// GPU ↔ NIC affinity: NCCL uses GPUDirect RDMA only through a NIC at most PXB away
// (reference/monitoring.md §4.3). A GPU whose nearest healthy NIC is farther stages its traffic
// through host memory: it works, slowly.
import { computeTopology, type FabricTopology, locateGpus, nicLocations, scanSysfsGpus } from "../fabric/index.js";
import { NvmlUnavailableError } from "./errors.js";
import { type Finding, fail, fold, gpuLabel, pass, warn } from "./findings.js";
import type { Check, Verdict } from "./types.js";

export interface TopologyFacts {
  readonly topology: FabricTopology;
  /** GPUs whose PCI device is not under the sysfs root. */
  readonly unlocated: readonly number[];
  /** Where the GPU list came from. */
  readonly gpuSource: "NVML" | "sysfs PCI scan";
}

const NO_NIC_FIX =
  "This GPU has no healthy RDMA NIC at all: fix the down ports first (fabric.ports); until then its multi-node traffic has no GPUDirect path.";
const FAR_FIX =
  "The GPU's own rail NIC is down or missing, so traffic crosses the CPU: bring that NIC's port back (fabric.ports); keep multi-node jobs off this GPU until then.";
const NOT_FOUND_FIX =
  "The GPU's PCI device is not in sysfs where NVML says it is: check --sysfs-root, or whether the GPU fell off the bus.";

export const topologyCheck: Check<TopologyFacts> = {
  id: "topology.gpu-nic",
  title: "Every GPU has a healthy NIC within PXB",
  level: "quick",
  reads: [
    "/sys/bus/pci/devices/<gpu> (realpath, numa_node)",
    "/sys/class/infiniband/*/device",
    "nvmlDeviceGetPciInfo_v3",
  ],
  async gather(ctx) {
    const source = ctx.fabricSource();
    const fabric = await ctx.fabric();
    let gpus: { index: number; pciBusId: string; uuid?: string }[];
    let gpuSource: TopologyFacts["gpuSource"] = "NVML";
    try {
      const system = await ctx.nvml("system");
      gpus = system.gpus.flatMap((g) =>
        g.pciBusId ? [{ index: g.index, pciBusId: g.pciBusId, ...(g.uuid ? { uuid: g.uuid } : {}) }] : [],
      );
    } catch (err) {
      if (!(err instanceof NvmlUnavailableError)) throw err;
      gpus = scanSysfsGpus(source.sysfsRoot);
      gpuSource = "sysfs PCI scan";
    }
    const located = locateGpus(source.sysfsRoot, gpus);
    const topology = computeTopology(located, nicLocations(fabric.reading, fabric.health));
    const unlocated = located.filter((g) => g.pciPath === undefined).map((g) => g.index);
    return { topology, unlocated, gpuSource };
  },
  verdict: topologyVerdict,
};

export function topologyVerdict({ topology, unlocated, gpuSource }: TopologyFacts): Verdict {
  if (topology.nics.length === 0) return { status: "skip", evidence: ["no RDMA NICs on this host"], remediation: "" };
  if (topology.gpus.length === 0) return { status: "skip", evidence: [`no GPUs (${gpuSource})`], remediation: "" };
  const findings: Finding[] = topology.gpus.map((g) => {
    const label = gpuLabel(g.index, g.pciBusId);
    const nearest = g.nearestHealthyNic;
    if (unlocated.includes(g.index)) return warn(`${label}: ${g.flag ?? "not found in sysfs"}`, NOT_FOUND_FIX);
    if (!nearest) return fail(`${label}: no healthy NIC`, NO_NIC_FIX);
    if (!g.gpuDirectRdma)
      return warn(`${label}: ${g.flag ?? `nearest healthy NIC ${nearest.device} is ${nearest.distance}`}`, FAR_FIX);
    return pass(`${label}: ${nearest.device} at ${nearest.distance}`);
  });
  return fold(findings, { passSummary: `every GPU has a healthy NIC within PXB (GPUs from ${gpuSource})` });
}
