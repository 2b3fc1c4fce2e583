// Run by multiprocess.test.ts in a separate node process: creates a GPU instance and a compute
// instance through the binding on the simulator named by the inherited environment, injects an
// XID on it through the control API, and prints what it made as JSON.
import { openNvml } from "../../src/nvml/library.js";
import { SimControl } from "../../src/sim/control.js";

const gpuIndex = Number(process.argv[2] ?? "0");
const nvml = await openNvml();
try {
  const gpu = nvml.device(gpuIndex);
  const gi = gpu.mig.createGpuInstance(9, { start: 4, size: 4 });
  const ci = gi.createComputeInstance(2);
  const migDevice = gpu.migDevices().find((d) => d.gpuInstanceId() === gi.id);
  SimControl.open(nvml.libraryPath).injectXid(gpuIndex, 94, gi.id);
  process.stdout.write(`${JSON.stringify({ pid: process.pid, gi: gi.id, ci: ci.id, uuid: migDevice?.uuid() })}\n`);
} finally {
  nvml.shutdown();
}
