// `npm start`: tessera-agent on the simulated DGX H100 host (a small demo layout, the DGX H100
// fabric fixture), on loopback in development mode, with how to query it. It keeps its own
// simulator state file so it never disturbs a developer's other simulations.
import { mkdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { defaultAgentConfig, finishConfig } from "../agent/config.js";
import { Agent, type AgentEndpoints } from "../agent/daemon.js";
import { createLogger } from "../agent/logger.js";
import { openNvml, packageRoot, simulatorLibraryPath } from "../nvml/index.js";
import { SIM_STATE_ENV, SimControl } from "../sim/control.js";

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

/** How to talk to the demo agent, printed once it is ready. */
export function demoInstructions(endpoints: AgentEndpoints, statePath: string): string {
  return [
    "",
    `tessera-agent is serving the simulated DGX H100 (simulator state ${statePath}).`,
    "",
    "  Inventory over gRPC (dev listener, plaintext on loopback):",
    `    npm run tessera -- inspect --agent ${endpoints.tcp} --insecure`,
    ...(endpoints.socket ? [`    npm run tessera -- inspect --agent unix://${endpoints.socket}`] : []),
    "  Prometheus metrics:",
    `    curl -s http://${endpoints.metrics}/metrics | grep -E '^(DCGM_FI_DEV_GPU_TEMP|tessera_mig_instances)'`,
    "  Make something happen (another terminal, same simulator state):",
    `    TESSERA_SIM_STATE=${statePath} npm run tessera -- sim xid 3 79`,
    "",
    "Ctrl-C stops the agent.",
    "",
  ].join("\n");
}

const root = packageRoot();
if (!process.env[SIM_STATE_ENV])
  process.env[SIM_STATE_ENV] = join(tmpdir(), `tessera-start-${process.getuid?.() ?? 0}.state`);
const control = SimControl.open(simulatorLibraryPath());
await setUpDemoHost(control);
const dir = join(tmpdir(), `tessera-start-${process.getuid?.() ?? 0}`);
await mkdir(dir, { recursive: true });
const config = finishConfig(defaultAgentConfig(), {
  library: simulatorLibraryPath(),
  listenTcp: process.env.TESSERA_START_LISTEN ?? "127.0.0.1:7443",
  devInsecure: true,
  socket: join(dir, "agent.sock"),
  metricsListen: process.env.TESSERA_START_METRICS ?? "127.0.0.1:9402",
  stateDir: join(dir, "state"),
  fabricSysfsRoot: join(root, "test/fixtures/sys/dgx-h100"),
  fabricProcRoot: join(root, "test/fixtures/proc/dgx-h100"),
  dynamicMig: true,
});
const log = createLogger({ level: process.env.TESSERA_LOG_LEVEL ?? "info" });
const agent = new Agent({ config, configPath: undefined, log, version: "demo", discardCorruptLeases: true });
const endpoints = await agent.start();
process.stdout.write(demoInstructions(endpoints, control.statePath()));
const signal = await new Promise<string>((resolve) => {
  process.once("SIGINT", () => resolve("SIGINT"));
  process.once("SIGTERM", () => resolve("SIGTERM"));
});
await agent.stop(signal);
setTimeout(() => process.exit(0), 200).unref();
