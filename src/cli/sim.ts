import { Command } from "commander";
import { InputError } from "../errors.js";
import { simulatorLibraryPath } from "../nvml/index.js";
import { SimControl, type SimPreset, TSIM_NONE } from "../sim/control.js";

function int(name: string, min = 0, max = Number.MAX_SAFE_INTEGER) {
  return (value: string): number => {
    if (!/^\d+$/.test(value)) throw new InputError(`${name} must be a non-negative integer, got "${value}"`);
    const n = Number(value);
    if (n < min || n > max) throw new InputError(`${name} must be between ${min} and ${max}, got ${n}`);
    return n;
  };
}

/** "3" → whole GPU 3; "3:1/0" → GPU 3, GPU instance 1, compute instance 0. */
export function parseTarget(value: string): { gpu: number; gpuInstanceId: number; computeInstanceId: number } {
  const m = /^(\d+)(?::(\d+)\/(\d+))?$/.exec(value);
  if (!m) throw new InputError(`expected GPU or GPU:GI/CI (e.g. 0 or 0:1/0), got "${value}"`);
  return {
    gpu: Number(m[1]),
    gpuInstanceId: m[2] === undefined ? TSIM_NONE : Number(m[2]),
    computeInstanceId: m[3] === undefined ? TSIM_NONE : Number(m[3]),
  };
}

function control(): SimControl {
  return SimControl.open(simulatorLibraryPath());
}

/** `tessera sim …`: drive the simulated driver that `--sim` commands (and the agent) read. */
export function simCommand(): Command {
  const sim = new Command("sim").description("Control the simulated NVIDIA driver (shared by every process using it)");
  sim
    .command("status")
    .description("the preset and the state file in use")
    .action(() => {
      const c = control();
      process.stdout.write(`preset ${c.preset()}\nstate  ${c.statePath()}\npresets ${c.presets().join(", ")}\n`);
    });
  sim
    .command("preset <name>")
    .description("replace the simulated host with a preset (dgx-h100, dgx-a100, hgx-h200, a30x4, mixed)")
    .action((name: string) => {
      const c = control();
      if (!c.presets().includes(name))
        throw new InputError(`unknown preset "${name}"; valid: ${c.presets().join(", ")}`);
      c.selectPreset(name as SimPreset);
      process.stdout.write(`simulating ${name}\n`);
    });
  sim
    .command("xid <target> <code>")
    .description("inject an XID on a GPU (or GPU:GI/CI to attribute it to a GPU instance)")
    .action((target: string, code: string) => {
      const t = parseTarget(target);
      control().injectXid(t.gpu, int("code")(code), t.gpuInstanceId === TSIM_NONE ? undefined : t.gpuInstanceId);
    });
  sim
    .command("ecc <gpu>")
    .description("set ECC error counters")
    .option("--sbe <n>", "volatile single-bit (corrected)", int("--sbe"), 0)
    .option("--dbe <n>", "volatile double-bit (uncorrected)", int("--dbe"), 0)
    .option("--sbe-aggregate <n>", "aggregate single-bit", int("--sbe-aggregate"), 0)
    .option("--dbe-aggregate <n>", "aggregate double-bit", int("--dbe-aggregate"), 0)
    .action((gpu: string, o: { sbe: number; dbe: number; sbeAggregate: number; dbeAggregate: number }) => {
      control().setEcc(int("gpu")(gpu), {
        sbeVolatile: o.sbe,
        dbeVolatile: o.dbe,
        sbeAggregate: Math.max(o.sbeAggregate, o.sbe),
        dbeAggregate: Math.max(o.dbeAggregate, o.dbe),
      });
    });
  sim
    .command("lose <gpu>")
    .description("make a GPU fall off the bus (XID 79; every call returns GPU_IS_LOST)")
    .option("--recover", "bring it back instead")
    .action((gpu: string, o: { recover?: boolean }) => control().setLost(int("gpu")(gpu), !o.recover));
  sim
    .command("reset <gpu>")
    .description("simulated GPU reset: applies a pending MIG mode, destroys instances, ends processes")
    .action((gpu: string) => control().resetGpu(int("gpu")(gpu)));
  sim
    .command("run <target>")
    .description("start a simulated compute process on a GPU or a MIG device (GPU:GI/CI); prints its pid")
    .option("--memory <MiB>", "framebuffer memory", int("--memory"), 1024)
    .option("--sm <percent>", "share of the device's SMs kept busy", int("--sm", 0, 100), 50)
    .option("--name <name>", "process name", "python3")
    .action((target: string, o: { memory: number; sm: number; name: string }) => {
      const t = parseTarget(target);
      const pid = control().startProcess({
        gpu: t.gpu,
        ...(t.gpuInstanceId === TSIM_NONE
          ? {}
          : { gpuInstanceId: t.gpuInstanceId, computeInstanceId: t.computeInstanceId }),
        memoryMiB: o.memory,
        smPercent: o.sm,
        name: o.name,
      });
      process.stdout.write(`${pid}\n`);
    });
  sim
    .command("kill <pid>")
    .description("stop a simulated process")
    .action((pid: string) => control().stopProcess(int("pid")(pid)));
  sim
    .command("latency <function> <microseconds>")
    .description('add latency to an NVML function ("*" for all); 0 removes it')
    .action((fn: string, us: string) => control().setLatency(fn, int("microseconds")(us)));
  sim
    .command("temperature <gpu> <celsius>")
    .description("hold a GPU at a temperature (-1 follows the load again)")
    .action((gpu: string, c: string) => {
      const v = Number(c);
      if (!Number.isInteger(v)) throw new InputError(`celsius must be an integer, got "${c}"`);
      control().setTemperature(int("gpu")(gpu), v < 0 ? undefined : v);
    });
  return sim;
}
