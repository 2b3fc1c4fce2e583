// Sweeps cross from the sampler thread to the main thread by structured clone. Most of a sweep
// (GPU identities, MIG layouts, the driver) is the same object as in the previous sweep, so it is
// sent as "same" and the receiver reuses what it already has: less to copy, less garbage on both
// sides, and unchanged parts stay the same objects (so caches keyed on them keep working).
import type {
  DriverReading,
  GpuIdentity,
  GpuReading,
  GpuTelemetry,
  MigDeviceReading,
  MigReading,
  SweepResult,
} from "./sweep-types.js";

export type Same = "same";

export interface PackedTelemetry extends Omit<GpuTelemetry, "migDevices"> {
  readonly migDevices: readonly (MigDeviceReading | Same)[];
}

export interface PackedGpu extends Omit<GpuReading, "identity" | "mig" | "telemetry"> {
  readonly identity: GpuIdentity | Same;
  readonly mig: MigReading | undefined | Same;
  readonly telemetry: PackedTelemetry | undefined | Same;
}

export interface PackedSweep extends Omit<SweepResult, "gpus" | "driver"> {
  readonly driver: DriverReading | Same;
  readonly gpus: readonly PackedGpu[];
}

/** `result` with what is identical (by reference) to `previous` at the same GPU index replaced by "same". */
export function packSweep(result: SweepResult, previous: SweepResult | undefined): PackedSweep {
  return {
    ...result,
    driver: previous && previous.driver === result.driver ? "same" : result.driver,
    gpus: result.gpus.map((g, i) => {
      const p = previous?.gpus[i];
      const t = g.telemetry;
      const pt = p?.telemetry;
      return {
        ...g,
        identity: p && p.identity === g.identity ? "same" : g.identity,
        mig: p && g.mig !== undefined && p.mig === g.mig ? "same" : g.mig,
        telemetry:
          t === undefined
            ? undefined
            : pt === t
              ? "same"
              : { ...t, migDevices: t.migDevices.map((m, j) => (pt?.migDevices[j] === m ? "same" : m)) },
      };
    }),
  };
}

export class SweepUnpackError extends Error {}

/** The sweep `packSweep` packed, given the previous sweep this side unpacked. */
export function unpackSweep(packed: PackedSweep, previous: SweepResult | undefined): SweepResult {
  const same = <T>(what: string, i: number, v: T | Same, prior: T | undefined): T => {
    if (v !== "same") return v;
    if (prior === undefined)
      throw new SweepUnpackError(`sweep ${packed.sweep}: GPU ${i} ${what} is "same" but there is no previous one`);
    return prior;
  };
  return {
    ...packed,
    driver: same("driver", -1, packed.driver, previous?.driver),
    gpus: packed.gpus.map((g, i) => {
      const prior = previous?.gpus[i];
      const t = g.telemetry;
      const telemetry: GpuTelemetry | undefined =
        t === undefined || t === "same"
          ? same("telemetry", i, t, prior?.telemetry)
          : { ...t, migDevices: t.migDevices.map((m, j) => same("MIG device", i, m, prior?.telemetry?.migDevices[j])) };
      return {
        ...g,
        identity: same("identity", i, g.identity, prior?.identity),
        mig: same("MIG layout", i, g.mig, prior?.mig),
        telemetry,
      };
    }),
  };
}
