// How CLI commands choose and open an NVML library: the real driver by default, the simulator with --sim.
import { type Command, Option } from "commander";
import { type Nvml, openNvml, simulatorLibraryPath } from "../nvml/index.js";
import { SimControl, type SimPreset } from "../sim/control.js";

export interface NvmlCliOptions {
  library?: string;
  sim?: boolean;
  preset?: string;
}

export function addNvmlOptions(cmd: Command): Command {
  return cmd
    .option("--library <path>", "NVML library to load (default: TESSERA_NVML_LIBRARY, then libnvidia-ml.so.1)")
    .option("--sim", "use Tessera's simulated driver instead of NVIDIA's")
    .addOption(
      new Option(
        "--preset <name>",
        "with --sim: the simulated host; switching presets resets the simulator state",
      ).choices(["dgx-h100", "dgx-a100", "hgx-h200", "a30x4", "mixed"]),
    );
}

export interface OpenedNvml {
  nvml: Nvml;
  preset?: string;
}

/** Opens NVML as the options say; read-only unless `writable`. */
export async function openNvmlFromOptions(opts: NvmlCliOptions, writable = false): Promise<OpenedNvml> {
  const libraryPath = opts.sim ? simulatorLibraryPath() : opts.library;
  if (opts.preset && !opts.sim) throw new Error("--preset needs --sim");
  let preset: string | undefined;
  if (opts.sim) {
    const control = SimControl.open(libraryPath);
    if (opts.preset && control.preset() !== opts.preset) control.selectPreset(opts.preset as SimPreset);
    preset = control.preset();
  }
  const nvml = await openNvml({ ...(libraryPath ? { libraryPath } : {}), readOnly: !writable });
  if (!opts.sim && nvml.simulated) preset = SimControl.open(nvml.libraryPath).preset();
  return preset === undefined ? { nvml } : { nvml, preset };
}
