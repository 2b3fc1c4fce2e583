// Test world on the simulated driver. The simulator latches its state-file path on first use and
// keeps it for the life of the process, so each test file (node:test runs each in its own process)
// gets one fresh temp dir, and each test rebuilds the simulated host in it with selectPreset().
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { NVML_LIBRARY_ENV, simulatorLibraryPath } from "../../src/nvml/loader.js";
import { SIM_STATE_ENV, SimControl, type SimPreset } from "../../src/sim/control.js";

export interface SimWorld {
  readonly dir: string;
  readonly statePath: string;
  readonly libraryPath: string;
  readonly sim: SimControl;
  /** Replaces the simulated host (all GPUs, instances, processes, events) with a fresh preset. */
  reset(preset?: SimPreset): void;
  dispose(): void;
}

/** The simulator under test: TESSERA_NVML_LIBRARY when set, else the one `npm install` built. */
export function simLibraryPath(): string {
  const fromEnv = process.env[NVML_LIBRARY_ENV];
  return fromEnv !== undefined && fromEnv !== "" ? fromEnv : simulatorLibraryPath();
}

/**
 * Points this process at a new state file in a fresh temp dir (before anything touches the
 * simulator) and selects `preset`. Also sets TESSERA_NVML_LIBRARY, so openNvml() with no
 * options loads the simulator the way the agent would.
 */
export function createSimWorld(preset: SimPreset = "dgx-h100"): SimWorld {
  const dir = mkdtempSync(join(tmpdir(), "tessera-nvml-test-"));
  const statePath = join(dir, "nvml-sim.state");
  process.env[SIM_STATE_ENV] = statePath;
  const libraryPath = simLibraryPath();
  process.env[NVML_LIBRARY_ENV] = libraryPath;
  const sim = SimControl.open(libraryPath);
  const seen = sim.statePath();
  if (seen !== statePath) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`simulator already uses ${seen}; a test world must be created before anything loads it`);
  }
  sim.selectPreset(preset);
  return {
    dir,
    statePath,
    libraryPath,
    sim,
    reset: (next: SimPreset = preset) => sim.selectPreset(next),
    dispose: () => rmSync(dir, { recursive: true, force: true }),
  };
}
