// One probe family on its own thread of the probe host: open NVML, run the family, report each
// NVML call before making it. A call that never returns keeps this thread (and only this one)
// stuck until the host process is killed.
import { parentPort, workerData } from "node:worker_threads";
import { openNvml } from "../nvml/index.js";
import type { ProbeEvent, ProbeWorkerData } from "./probe-protocol.js";
import { runProbe, toProbeError } from "./probes.js";

const port = parentPort;
if (port === null) throw new Error("probe-worker.ts runs as a worker thread of the probe host");
const data = workerData as ProbeWorkerData;
const post = (event: ProbeEvent) => port.postMessage(event);
const step = (operation: string, gpu?: number) => post({ type: "progress", operation, gpu, sinceMs: Date.now() });

let phase: "open" | "probe" = "open";
try {
  step("nvmlInit_v2");
  const started = performance.now();
  const nvml = await openNvml({ ...(data.libraryPath ? { libraryPath: data.libraryPath } : {}), readOnly: true });
  const initMs = performance.now() - started;
  phase = "probe";
  try {
    const facts = await runProbe(nvml, data.family, data.params, { step, initMs });
    post({ type: "result", facts });
  } finally {
    nvml.shutdown();
  }
} catch (err) {
  post({ type: "failed", phase, error: toProbeError(err) });
}
