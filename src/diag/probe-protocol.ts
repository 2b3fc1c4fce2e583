// Messages between the diagnostics runner, the probe host process and its probe threads.
import type { ProbeError, ProbeFamilies, ProbeFamily, ProbeParams } from "./facts.js";

export interface ProbeRequest {
  readonly type: "probe";
  readonly id: number;
  readonly family: ProbeFamily;
  readonly params: ProbeParams;
  /** NVML library to open; undefined: TESSERA_NVML_LIBRARY, then the system search. */
  readonly libraryPath: string | undefined;
}

/** What a probe thread says about itself (the host adds the request id). */
export type ProbeEvent =
  | {
      readonly type: "progress";
      readonly operation: string;
      readonly gpu: number | undefined;
      readonly sinceMs: number;
    }
  | { readonly type: "result"; readonly facts: ProbeFamilies[ProbeFamily] }
  | { readonly type: "failed"; readonly phase: "open" | "probe"; readonly error: ProbeError };

export type ProbeReply = ProbeEvent & { readonly id: number };

/** What the probe thread is started with. */
export interface ProbeWorkerData {
  readonly family: ProbeFamily;
  readonly params: ProbeParams;
  readonly libraryPath: string | undefined;
}
