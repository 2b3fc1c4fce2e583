// Typed binding of the simulator's control API (native/nvml-sim/include/tsim.h). It acts on the
// shared state file, so changes made here are seen by every process using the simulator. Each
// method returns normally or throws NvmlError naming the tsim_* function.
import koffi, { type LibraryHandle } from "koffi";
import { NvmlError } from "../nvml/errors.js";
import { simulatorLibraryPath } from "../nvml/loader.js";
import { Rc } from "../nvml/return-codes.js";

/** TSIM_NONE: "no GPU/compute instance" (whole-GPU scope). */
export const TSIM_NONE = 0xffffffff;

/** Environment variables the simulator reads when it creates its state. */
export const SIM_STATE_ENV = "TESSERA_SIM_STATE";
export const SIM_PRESET_ENV = "TESSERA_SIM_PRESET";

export type SimPreset = "dgx-h100" | "dgx-a100" | "hgx-h200" | "a30x4" | "mixed";

export interface EccCounts {
  readonly sbeVolatile: number | bigint;
  readonly dbeVolatile: number | bigint;
  readonly sbeAggregate: number | bigint;
  readonly dbeAggregate: number | bigint;
}

export interface RemappedRowsState {
  readonly corrected: number;
  readonly uncorrected: number;
  readonly pending: boolean;
  readonly failure: boolean;
}

export interface RetiredPagesState {
  readonly sbePages: number;
  readonly dbePages: number;
  readonly pending: boolean;
}

export interface SimProcessSpec {
  readonly gpu: number;
  /** GPU instance and compute instance ids for a process on a MIG device; omit both for the whole GPU. */
  readonly gpuInstanceId?: number;
  readonly computeInstanceId?: number;
  readonly memoryMiB: number;
  /** Share of the device's SMs kept busy, 0..100. */
  readonly smPercent: number;
  readonly name: string;
}

const PROTOTYPES = {
  tsim_select_preset: "int tsim_select_preset(const char *name)",
  tsim_get_preset: "int tsim_get_preset(char *buf, unsigned int length)",
  tsim_list_presets: "int tsim_list_presets(char *buf, unsigned int length)",
  tsim_state_path: "int tsim_state_path(char *buf, unsigned int length)",
  tsim_set_seed: "int tsim_set_seed(unsigned int seed)",
  tsim_reset_gpu: "int tsim_reset_gpu(unsigned int gpu)",
  tsim_inject_xid: "int tsim_inject_xid(unsigned int gpu, unsigned int gpuInstanceId, unsigned long long xid)",
  tsim_set_ecc:
    "int tsim_set_ecc(unsigned int gpu, unsigned long long sbeVolatile, unsigned long long dbeVolatile, unsigned long long sbeAggregate, unsigned long long dbeAggregate)",
  tsim_set_remapped_rows:
    "int tsim_set_remapped_rows(unsigned int gpu, unsigned int corrected, unsigned int uncorrected, unsigned int pending, unsigned int failure)",
  tsim_set_retired_pages:
    "int tsim_set_retired_pages(unsigned int gpu, unsigned int sbePages, unsigned int dbePages, unsigned int pending)",
  tsim_set_lost: "int tsim_set_lost(unsigned int gpu, unsigned int lost)",
  tsim_set_temperature: "int tsim_set_temperature(unsigned int gpu, int celsius)",
  tsim_set_power: "int tsim_set_power(unsigned int gpu, unsigned int milliwatts)",
  tsim_set_throttle: "int tsim_set_throttle(unsigned int gpu, unsigned long long reasons)",
  tsim_set_pcie_link: "int tsim_set_pcie_link(unsigned int gpu, unsigned int generation, unsigned int width)",
  tsim_add_pcie_replays: "int tsim_add_pcie_replays(unsigned int gpu, unsigned long long count)",
  tsim_process_start:
    "int tsim_process_start(unsigned int gpu, unsigned int gpuInstanceId, unsigned int computeInstanceId, unsigned long long memoryMiB, unsigned int smPercent, const char *name, unsigned int *pid)",
  tsim_process_stop: "int tsim_process_stop(unsigned int pid)",
  tsim_set_latency: "int tsim_set_latency(const char *function, unsigned int microseconds)",
  tsim_set_mig_blockers: "int tsim_set_mig_blockers(unsigned int gpu, unsigned int count)",
} as const;

type TsimSymbol = keyof typeof PROTOTYPES;
type TsimFn = (...args: unknown[]) => number;

const TEXT_BYTES = 4096;

/** The simulator's control surface, loaded from the simulator library. */
export class SimControl {
  readonly libraryPath: string;
  readonly #fn: Record<TsimSymbol, TsimFn>;
  readonly #text = Buffer.alloc(TEXT_BYTES);

  /** Loads the simulator (default: the one `npm install` built) and binds every tsim_* function. */
  static open(libraryPath: string = simulatorLibraryPath()): SimControl {
    let lib: LibraryHandle;
    try {
      lib = koffi.load(libraryPath);
    } catch (err) {
      throw new NvmlError(Rc.LIBRARY_NOT_FOUND, "load simulator", {
        detail: `${libraryPath}: ${err instanceof Error ? err.message : String(err)}; build it with \`npm install\``,
        cause: err,
      });
    }
    return new SimControl(lib, libraryPath);
  }

  private constructor(lib: LibraryHandle, libraryPath: string) {
    this.libraryPath = libraryPath;
    const fn = {} as Record<TsimSymbol, TsimFn>;
    for (const [name, proto] of Object.entries(PROTOTYPES) as [TsimSymbol, string][]) {
      try {
        fn[name] = lib.func(proto) as TsimFn;
      } catch (err) {
        throw new NvmlError(Rc.FUNCTION_NOT_FOUND, name, {
          detail: `${libraryPath} is not the Tessera simulator (or an older build of it)`,
          cause: err,
        });
      }
    }
    this.#fn = fn;
  }

  /** Replaces the whole simulated host with `preset`, destroying all state. */
  selectPreset(preset: SimPreset | string): void {
    this.#call("tsim_select_preset", preset);
  }

  preset(): string {
    return this.#string("tsim_get_preset");
  }

  presets(): string[] {
    return this.#string("tsim_list_presets")
      .split(",")
      .map((s) => s.trim())
      .filter((s) => s !== "");
  }

  /** The state file in use (works before nvmlInit). */
  statePath(): string {
    return this.#string("tsim_state_path");
  }

  setSeed(seed: number): void {
    this.#call("tsim_set_seed", seed);
  }

  /** A simulated GPU reset: applies a pending MIG mode, destroys all instances, ends processes, clears volatile ECC and lost. */
  resetGpu(gpu: number): void {
    this.#call("tsim_reset_gpu", gpu);
  }

  /** Queues an XID event on a GPU, or on one of its GPU instances. */
  injectXid(gpu: number, xid: number | bigint, gpuInstanceId: number = TSIM_NONE): void {
    this.#call("tsim_inject_xid", gpu, gpuInstanceId, BigInt(xid));
  }

  /** Sets ECC counters; raising a volatile count also raises the matching ECC event. */
  setEcc(gpu: number, counts: EccCounts): void {
    this.#call(
      "tsim_set_ecc",
      gpu,
      BigInt(counts.sbeVolatile),
      BigInt(counts.dbeVolatile),
      BigInt(counts.sbeAggregate),
      BigInt(counts.dbeAggregate),
    );
  }

  setRemappedRows(gpu: number, state: RemappedRowsState): void {
    this.#call(
      "tsim_set_remapped_rows",
      gpu,
      state.corrected,
      state.uncorrected,
      state.pending ? 1 : 0,
      state.failure ? 1 : 0,
    );
  }

  setRetiredPages(gpu: number, state: RetiredPagesState): void {
    this.#call("tsim_set_retired_pages", gpu, state.sbePages, state.dbePages, state.pending ? 1 : 0);
  }

  /** Loses a GPU (every NVML call on it answers GPU_IS_LOST) or recovers it. */
  setLost(gpu: number, lost: boolean): void {
    this.#call("tsim_set_lost", gpu, lost ? 1 : 0);
  }

  /** Pins the temperature; undefined returns to load-following values. */
  setTemperature(gpu: number, celsius: number | undefined): void {
    this.#call("tsim_set_temperature", gpu, celsius ?? -1);
  }

  /** Pins power draw; undefined returns to load-following values. */
  setPower(gpu: number, milliwatts: number | undefined): void {
    this.#call("tsim_set_power", gpu, milliwatts ?? 0);
  }

  /** Pins the clock event reasons mask; undefined returns to load-following values. */
  setThrottle(gpu: number, reasons: bigint | undefined): void {
    this.#call("tsim_set_throttle", gpu, reasons ?? 0xffff_ffff_ffff_ffffn);
  }

  /** Downgrades the current PCIe link; undefined returns to the maximum. */
  setPcieLink(gpu: number, link: { generation: number; width: number } | undefined): void {
    this.#call("tsim_set_pcie_link", gpu, link?.generation ?? 0, link?.width ?? 0);
  }

  addPcieReplays(gpu: number, count: number | bigint): void {
    this.#call("tsim_add_pcie_replays", gpu, BigInt(count));
  }

  /** Starts a simulated compute process; returns its pid. */
  startProcess(spec: SimProcessSpec): number {
    const pid = new Uint32Array(1);
    this.#call(
      "tsim_process_start",
      spec.gpu,
      spec.gpuInstanceId ?? TSIM_NONE,
      spec.computeInstanceId ?? TSIM_NONE,
      BigInt(spec.memoryMiB),
      spec.smPercent,
      spec.name,
      pid,
    );
    return pid[0] as number;
  }

  stopProcess(pid: number): void {
    this.#call("tsim_process_stop", pid);
  }

  /** Adds latency to an NVML function ("*" for all); 0 removes it. */
  setLatency(functionName: string, microseconds: number): void {
    this.#call("tsim_set_latency", functionName, microseconds);
  }

  /** Simulated clients that keep an Ampere MIG mode change pending ("In use by another client"). */
  setMigBlockers(gpu: number, count: number): void {
    this.#call("tsim_set_mig_blockers", gpu, count);
  }

  #call(name: TsimSymbol, ...args: unknown[]): void {
    const rc = this.#fn[name](...args);
    if (rc !== Rc.SUCCESS) {
      const shown = args.filter((a) => !(a instanceof Uint8Array || a instanceof Uint32Array)).map(String);
      throw new NvmlError(rc, name, { detail: `arguments: ${shown.join(", ")}` });
    }
  }

  #string(name: TsimSymbol): string {
    const buf = this.#text;
    this.#call(name, buf, buf.length);
    const end = buf.indexOf(0);
    return buf.toString("utf8", 0, end < 0 ? buf.length : end);
  }
}
