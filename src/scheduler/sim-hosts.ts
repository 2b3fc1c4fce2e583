// Simulated hosts for the whole-cluster demo and the end-to-end tests: a preset with MIG enabled
// on its MIG-capable GPUs (Ampere's pending mode change applied with a simulated GPU reset) and an
// optional starting layout (what a static node hands out). The simulator keeps one state file per
// process, so this runs in a process of its own for each host: `node --import tsx
// src/scheduler/sim-hosts.ts '<json spec>'` with TESSERA_SIM_STATE naming that host's state.
import { pathToFileURL } from "node:url";
import { GeometryCache, readHostGpus } from "../mig/nvml-source.js";
import { openNvml, simulatorLibraryPath } from "../nvml/index.js";
import { SimControl, type SimPreset } from "../sim/control.js";

export interface SimHostSpec {
  readonly preset: SimPreset;
  /** GPU indexes to switch MIG on for; default every MIG-capable GPU. */
  readonly migGpus?: readonly number[];
  /** Instances to create, `profile@start` per GPU index (each with one full-size compute instance). */
  readonly layouts?: Readonly<Record<number, readonly string[]>>;
}

/** Prepares the simulated host of this process's state file (TESSERA_SIM_STATE). */
export async function prepareSimHost(spec: SimHostSpec, libraryPath: string = simulatorLibraryPath()): Promise<void> {
  const control = SimControl.open(libraryPath);
  control.selectPreset(spec.preset);
  const nvml = await openNvml({ libraryPath });
  try {
    const count = nvml.deviceCount();
    const wanted = spec.migGpus ?? Array.from({ length: count }, (_, i) => i);
    for (const i of wanted) {
      const device = nvml.device(i);
      if (device.mig.mode() === undefined) continue; // not MIG-capable
      const change = device.mig.setMode(true);
      if (!change.current) control.resetGpu(i); // Ampere: the change waits for a GPU reset
    }
    const gpus = readHostGpus(nvml, new GeometryCache());
    for (const [index, instances] of Object.entries(spec.layouts ?? {})) {
      const gpu = gpus.find((g) => g.index === Number(index));
      if (!gpu?.geometry) throw new Error(`GPU ${index} of ${spec.preset} has no MIG geometry`);
      for (const item of instances) {
        const [name, at] = item.split("@");
        const profile = gpu.geometry.profiles.find((p) => p.name === name);
        if (!profile || at === undefined) throw new Error(`GPU ${index} (${gpu.model}): no profile ${item}`);
        const gi = gpu.device.mig.createGpuInstance(profile.id, { start: Number(at), size: profile.memorySlices });
        const full = gi.computeInstanceProfiles().reduce((a, b) => (b.sliceCount > a.sliceCount ? b : a));
        gi.createComputeInstance(full.id);
      }
    }
  } finally {
    nvml.shutdown();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const spec = JSON.parse(process.argv[2] ?? "{}") as SimHostSpec;
  prepareSimHost(spec).then(
    () => process.exit(0),
    (err: unknown) => {
      process.stderr.write(`sim-hosts: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(1);
    },
  );
}
