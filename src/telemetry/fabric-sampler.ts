// Fabric health on the sampler's schedule: one sysfs sweep through src/fabric, with counter
// history carried between sweeps (and across restarts through the fabric snapshot store), and
// link changes as a diff of consecutive evaluations.

import { errorMessage, TesseraError } from "../errors.js";
import { collectFabric, type FabricCollection } from "../fabric/collect.js";
import { diffFabricHealth } from "../fabric/events.js";
import type { FabricExpectations } from "../fabric/expect-config.js";
import type { GpuDescription } from "../fabric/gpu-source.js";
import type { FabricHealth, PortHealth } from "../fabric/health.js";
import type { RdmaPortReading } from "../fabric/read.js";
import type { FabricCounterState } from "../fabric/snapshot-store.js";
import type { FabricPortReading, FabricSweep, GpuNicReading, LinkChange } from "./sweep-types.js";

export interface FabricSamplerOptions {
  readonly sysfsRoot: string;
  readonly procRoot: string;
  readonly expectations?: FabricExpectations;
  readonly clock?: () => number;
}

export class FabricSampler {
  readonly #options: FabricSamplerOptions;
  #state: FabricCounterState | undefined;
  #health: FabricHealth | undefined;

  constructor(options: FabricSamplerOptions, restored?: FabricCounterState) {
    this.#options = options;
    this.#state = restored;
  }

  /** Counter history to persist (saveSnapshots). */
  get state(): FabricCounterState | undefined {
    return this.#state;
  }

  sweep(gpus: readonly GpuDescription[]): FabricSweep {
    const clock = this.#options.clock ?? Date.now;
    let collection: FabricCollection;
    try {
      collection = collectFabric(
        this.#state,
        {
          sysfsRoot: this.#options.sysfsRoot,
          procRoot: this.#options.procRoot,
          clock,
          ...(this.#options.expectations ? { expectations: this.#options.expectations } : {}),
        },
        gpus,
      );
    } catch (err) {
      if (!(err instanceof TesseraError)) throw err;
      return { atMs: clock(), ports: [], topology: [], changes: [], durationMs: 0, error: errorMessage(err) };
    }
    const changes = diffFabricHealth(this.#health, collection.health).flatMap((e): LinkChange[] =>
      e.type === "fabric.port.health"
        ? [
            {
              device: e.device,
              port: e.port,
              previous: e.from,
              current: e.to,
              reasons: e.reasons.map((r) => r.message),
            },
          ]
        : [
            {
              device: e.problem.subject,
              port: 0,
              previous: e.status === "raised" ? "present" : "missing",
              current: e.status === "raised" ? "missing" : "present",
              reasons: [e.problem.message],
            },
          ],
    );
    this.#state = collection.state;
    this.#health = collection.health;
    return {
      atMs: collection.atMs,
      ports: portReadings(collection),
      topology: (collection.topology?.gpus ?? []).map(
        (g): GpuNicReading => ({
          gpuIndex: g.index,
          gpuUuid: g.uuid ?? "",
          nearestNic: g.nearestHealthyNic?.device ?? "",
          distance: g.nearestHealthyNic?.distance ?? "",
          rdmaDegraded: !g.gpuDirectRdma,
        }),
      ),
      changes,
      durationMs: collection.durationMs,
      error: undefined,
    };
  }
}

function portReadings(c: FabricCollection): FabricPortReading[] {
  const readings = new Map<string, { port: RdmaPortReading; pciAddress: string; netdevs: string[] }>();
  for (const d of c.reading.devices) {
    for (const p of d.ports) readings.set(p.key, { port: p, pciAddress: d.pciAddress ?? "", netdevs: d.netdevs });
  }
  const out: FabricPortReading[] = c.health.ports.map((h: PortHealth) => {
    const r = readings.get(h.key);
    const p = r?.port;
    return {
      key: h.key,
      device: h.device,
      port: h.port,
      linkLayer: h.linkLayer ?? "",
      state: p?.state?.name ?? "",
      physicalState: p?.physState?.name ?? "",
      rateGbps: h.rate?.rateGbps,
      up: p?.state && p.physState ? p.state.name === "ACTIVE" && p.physState.name === "LinkUp" : undefined,
      pciAddress: r?.pciAddress ?? "",
      netdevs: r?.netdevs ?? [],
      verdict: h.verdict,
      reasons: h.reasons.map((x) => x.message),
      errorRatesPerSec: h.errorRatesPerSec,
      rxGbps: h.traffic?.rcvGbps,
      txGbps: h.traffic?.xmitGbps,
    };
  });
  for (const problem of c.health.problems) {
    if (problem.code !== "expected-port-missing") continue;
    const [device = problem.subject, port = "0"] = problem.subject.split("/");
    out.push({
      key: problem.subject,
      device,
      port: Number(port),
      linkLayer: "",
      state: "",
      physicalState: "",
      rateGbps: undefined,
      up: false,
      pciAddress: "",
      netdevs: [],
      verdict: "missing",
      reasons: [problem.message],
      errorRatesPerSec: {},
      rxGbps: undefined,
      txGbps: undefined,
    });
  }
  return out;
}
