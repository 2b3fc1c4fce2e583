// One full telemetry sweep of a host through koffi, against the same calls made from C (the floor).
// Default: the simulator's dgx-h100 with all 8 GPUs split into 7 MIG devices each.
// On a real GPU host: --library /path/to/libnvidia-ml.so.1 --read-only (sweeps what exists, creates nothing).
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { type Device, openNvml, packageRoot, simulatorLibraryPath } from "../src/nvml/index.js";
import { SIM_STATE_ENV, SimControl } from "../src/sim/control.js";

const { values: args } = parseArgs({
  options: {
    library: { type: "string" },
    "read-only": { type: "boolean", default: false },
    iterations: { type: "string", default: "2000" },
  },
});
const iterations = Number(args.iterations);
const readOnly = args["read-only"] === true;
const dir = mkdtempSync(join(tmpdir(), "tessera-bench-sweep-"));
const libraryPath = args.library ?? simulatorLibraryPath();

/** The sweep the agent's sampler makes: every telemetry getter of every GPU and MIG device. */
export function sweep(gpus: readonly Device[]): void {
  for (const d of gpus) {
    d.memory();
    d.utilization();
    d.temperatureCelsius();
    d.powerUsageMilliwatts();
    d.enforcedPowerLimitMilliwatts();
    d.totalEnergyMillijoules();
    d.clocks();
    d.clockEventReasons();
    d.eccErrors();
    d.pcieLink();
    d.pcieReplayCounter();
    d.computeProcesses();
    d.mig.mode();
    for (const m of d.migDevices()) {
      m.memory();
      m.computeProcesses();
    }
  }
}

function median(sorted: number[]): number {
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
}

interface Floor {
  medianUs: number;
  p99Us: number;
  callsPerSweep: number;
}

/** The same calls from C, linked to the same library; null where no C compiler is installed. */
function measureFloor(library: string, n: number): Floor | null {
  const floorBin = join(dir, "nvml-sweep-floor");
  const root = packageRoot();
  const link = library.includes("/") ? [library, `-Wl,-rpath,${join(library, "..")}`] : [`-l:${library}`];
  try {
    execFileSync(
      "cc",
      [
        "-O2",
        "-o",
        floorBin,
        join(root, "bench/native/nvml-sweep-floor.c"),
        `-I${join(root, "native/nvml-sim/include")}`,
        ...link,
      ],
      { stdio: ["ignore", "ignore", "inherit"] },
    );
  } catch (err) {
    process.stderr.write(`nvml-sweep: no C floor (${(err as Error).message.split("\n")[0]})\n`);
    return null;
  }
  return JSON.parse(execFileSync(floorBin, [String(n)], { encoding: "utf8" })) as Floor;
}

try {
  if (!args.library) {
    process.env[SIM_STATE_ENV] = join(dir, "sim.state");
    SimControl.open(libraryPath).selectPreset("dgx-h100");
  }
  const nvml = await openNvml({ libraryPath, readOnly });
  const gpus = nvml.devices();
  if (!args.library) {
    for (const gpu of gpus) {
      gpu.mig.setMode(true);
      for (let i = 0; i < 7; i++) gpu.mig.createGpuInstance(19).createComputeInstance(0);
    }
  }
  const migDevices = gpus.reduce((n, g) => n + g.migDevices().length, 0);
  for (let i = 0; i < 200; i++) sweep(gpus);
  const times: number[] = [];
  for (let i = 0; i < iterations; i++) {
    const t0 = process.hrtime.bigint();
    sweep(gpus);
    times.push(Number(process.hrtime.bigint() - t0) / 1e3);
  }
  times.sort((a, b) => a - b);
  nvml.shutdown();

  const floor = measureFloor(libraryPath, iterations);
  const medianUs = median(times);
  process.stdout.write(
    `${JSON.stringify({
      bench: "nvml-sweep",
      library: args.library ? libraryPath : "nvml-sim (dgx-h100)",
      gpus: gpus.length,
      migDevices,
      iterations,
      medianUs: Number(medianUs.toFixed(1)),
      p99Us: Number((times[Math.floor(times.length * 0.99)] ?? Number.NaN).toFixed(1)),
      floorMedianUs: floor?.medianUs ?? null,
      floorP99Us: floor?.p99Us ?? null,
      callsPerSweep: floor?.callsPerSweep ?? null,
      ratioToFloor: floor ? Number((medianUs / floor.medianUs).toFixed(2)) : null,
      targets: { ratioToFloor: 2, medianUs: 1000 },
    })}\n`,
  );
} finally {
  rmSync(dir, { recursive: true, force: true });
}
