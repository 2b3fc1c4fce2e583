// `npm start`: the simulated DGX H100 host with a small demo layout, shown by `tessera inspect`.
// It keeps its own simulator state file so it never disturbs a developer's other simulations.
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openNvml, simulatorLibraryPath } from "../nvml/index.js";
import { SIM_STATE_ENV, SimControl } from "../sim/control.js";
import { main } from "./program.js";

/** Enables MIG on GPUs 0–1 with mixed layouts and starts a few simulated jobs, as a fresh host would have. */
export async function setUpDemoHost(control: SimControl): Promise<void> {
  control.selectPreset("dgx-h100");
  const nvml = await openNvml({ libraryPath: simulatorLibraryPath() });
  try {
    const layouts: Record<number, [number, number][]> = {
      0: [
        [9, 0], // 3g.40gb @0
        [14, 4], // 2g.20gb @4
        [19, 6], // 1g.10gb @6
      ],
      1: [
        [19, 0],
        [19, 1],
        [19, 2],
        [19, 3],
        [9, 4], // 3g.40gb @4
      ],
    };
    for (const [gpu, instances] of Object.entries(layouts)) {
      const device = nvml.device(Number(gpu));
      device.mig.setMode(true);
      for (const [profileId, start] of instances) {
        const size = profileId === 9 ? 4 : profileId === 14 ? 2 : 1;
        const gi = device.mig.createGpuInstance(profileId, { start, size });
        // the compute instance spanning the whole GPU instance, as `nvidia-smi mig -cgi … -C` makes
        const full = gi.computeInstanceProfiles().reduce((a, b) => (b.sliceCount > a.sliceCount ? b : a));
        gi.createComputeInstance(full.id);
      }
    }
    const first = nvml.device(0).migDevices()[0];
    if (first) {
      control.startProcess({
        gpu: 0,
        gpuInstanceId: first.gpuInstanceId(),
        computeInstanceId: first.computeInstanceId(),
        memoryMiB: 24_000,
        smPercent: 90,
        name: "python3 finetune.py",
      });
    }
    control.startProcess({ gpu: 4, memoryMiB: 61_440, smPercent: 85, name: "torchrun train.py" });
    control.startProcess({ gpu: 5, memoryMiB: 20_480, smPercent: 35, name: "tritonserver" });
  } finally {
    nvml.shutdown();
  }
}

if (!process.env[SIM_STATE_ENV])
  process.env[SIM_STATE_ENV] = join(tmpdir(), `tessera-start-${process.getuid?.() ?? 0}.state`);
const control = SimControl.open(simulatorLibraryPath());
await setUpDemoHost(control);
process.stdout.write(`Simulated DGX H100 (state ${control.statePath()}); tessera inspect --sim:\n\n`);
process.exitCode = await main(["inspect", "--sim", ...process.argv.slice(2)]);
