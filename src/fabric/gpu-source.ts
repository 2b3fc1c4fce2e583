// Where topology gets its GPUs from. The agent will hand in NVML's list; the
// CLI (and hosts without a driver) scan PCI sysfs for NVIDIA 3D controllers.
import { formatNvmlBusId, parseHex, parsePciAddress } from "./parse.js";
import { DEFAULT_SYSFS_ROOT } from "./read.js";
import { SysfsFiles } from "./sysfs-files.js";

export interface GpuDescription {
  /** NVML index (PCI bus order when it comes from the sysfs scan). */
  index: number;
  uuid?: string;
  /** NVML form, e.g. `00000000:1B:00.0`; sysfs form is accepted as well. */
  pciBusId: string;
}

/** Swap point for NVML: anything that can list the host's GPUs. */
export interface GpuSource {
  listGpus(): Promise<readonly GpuDescription[]>;
}

const NVIDIA_VENDOR_ID = 0x10de;
/** PCI class 0x0302xx: 3D controller (datacenter GPUs; NVSwitches are bridges, 0x0680xx). */
const CLASS_3D_CONTROLLER = 0x0302;

/** NVIDIA 3D controllers under `<sysfsRoot>/bus/pci/devices`, indexed in PCI bus order. */
export function scanSysfsGpus(sysfsRoot: string = DEFAULT_SYSFS_ROOT): GpuDescription[] {
  const files = new SysfsFiles(sysfsRoot);
  const found: string[] = [];
  for (const address of files.list("bus/pci/devices")) {
    if (!/^[0-9a-f]{4,8}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$/.test(address)) continue;
    const vendor = files.parse(`bus/pci/devices/${address}/vendor`, (t) => parseHex(t, "PCI vendor"));
    if (vendor !== NVIDIA_VENDOR_ID) continue;
    const pciClass = files.parse(`bus/pci/devices/${address}/class`, (t) => parseHex(t, "PCI class"));
    if (pciClass === undefined || pciClass >> 8 !== CLASS_3D_CONTROLLER) continue;
    found.push(address);
  }
  const order = (a: string) => {
    const p = parsePciAddress(a);
    return ((p.domain * 256 + p.bus) * 32 + p.device) * 8 + p.function;
  };
  return found
    .sort((a, b) => order(a) - order(b))
    .map((address, index) => ({ index, pciBusId: formatNvmlBusId(parsePciAddress(address)) }));
}

export function sysfsGpuSource(sysfsRoot: string = DEFAULT_SYSFS_ROOT): GpuSource {
  return { listGpus: async () => scanSysfsGpus(sysfsRoot) };
}
