// Where NVML facts come from. The CLI and the agent use the probe host (probe-host-client.ts),
// which bounds hung calls; in-process probing is for callers that already hold an Nvml and do
// not need that bound (tests, tools on a known-good host).
import { type Nvml, NvmlError } from "../nvml/index.js";
import { NvmlUnavailableError, ProbeFailedError } from "./errors.js";
import type { ProbeFamilies, ProbeFamily, ProbeParams, ProbeProgress } from "./facts.js";
import { runProbe, toProbeError } from "./probes.js";

export interface NvmlFactSource {
  /**
   * Runs one probe family. Rejects with NvmlUnavailableError when NVML cannot be opened,
   * ProbeFailedError when the family failed as a whole.
   */
  probe<K extends ProbeFamily>(family: K, params: ProbeParams): Promise<ProbeFamilies[K]>;
  /** The NVML call a family is inside of right now, if it is running. */
  progress(family: ProbeFamily): ProbeProgress | undefined;
  /** Stops every probe (killing a stuck one where the source can) and frees what it holds. */
  close(): Promise<void>;
}

/**
 * Probes on an Nvml in this process: `nvml`, or the one `open` returns on first use (its
 * time counts as init time). A hung NVML call blocks this thread: no timeout can fire.
 */
export function inProcessNvmlSource(nvml: Nvml | (() => Promise<Nvml>)): NvmlFactSource {
  const progress = new Map<ProbeFamily, ProbeProgress>();
  let opened: Promise<{ nvml: Nvml; initMs: number; owned: boolean }> | undefined;
  const open = () => {
    opened ??= (async () => {
      if (typeof nvml !== "function") return { nvml, initMs: 0, owned: false };
      const started = performance.now();
      try {
        return { nvml: await nvml(), initMs: performance.now() - started, owned: true };
      } catch (err) {
        throw new NvmlUnavailableError(toProbeError(err));
      }
    })();
    return opened;
  };
  return {
    async probe(family, params) {
      const { nvml: lib, initMs } = await open();
      const step = (operation: string, gpu?: number) => progress.set(family, { operation, gpu, sinceMs: Date.now() });
      try {
        return await runProbe(lib, family, params, { step, initMs });
      } catch (err) {
        if (err instanceof NvmlError) throw new ProbeFailedError(family, toProbeError(err));
        throw err;
      } finally {
        progress.delete(family);
      }
    },
    progress: (family) => progress.get(family),
    async close() {
      if (!opened) return;
      const got = await opened.catch(() => undefined);
      if (got?.owned) got.nvml.shutdown();
    },
  };
}
