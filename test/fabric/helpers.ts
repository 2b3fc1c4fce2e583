// Builders shared by the fabric tests: temp dirs, fault variants written in
// phases, synthetic port readings.
import { accessSync, constants, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { collectFabric, type FabricCollection } from "../../src/fabric/collect.js";
import type { FabricExpectations } from "../../src/fabric/expect-config.js";
import type { GpuDescription } from "../../src/fabric/gpu-source.js";
import { parsePhysState, parsePortState, parseRate } from "../../src/fabric/parse.js";
import type { RdmaDeviceReading, RdmaPortReading } from "../../src/fabric/read.js";
import type { FabricCounterState } from "../../src/fabric/snapshot-store.js";
import { FAULTS, type FaultName, hostFacts, writeHostFixture } from "../fixtures/make-sysfs.js";

export const T0_MS = Date.UTC(2026, 6, 1, 12, 0, 0);

/**
 * Fixture trees are ~1700 tiny files; on disks mounted with `discard`,
 * creating and unlinking them takes seconds, in memory milliseconds. Prefer
 * tmpfs when there is one (TESSERA_TEST_TMPDIR overrides).
 */
function tempRoot(): string {
  const override = process.env.TESSERA_TEST_TMPDIR;
  if (override) return override;
  try {
    accessSync("/dev/shm", constants.W_OK);
    return "/dev/shm";
  } catch {
    return tmpdir();
  }
}

export function tempDir(t: { after: (fn: () => void) => void }, prefix = "tessera-fabric-"): string {
  const dir = mkdtempSync(join(tempRoot(), prefix));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export function gpusOf(model: "dgx-h100" | "dgx-a100"): GpuDescription[] {
  return hostFacts(model).gpus.map((g) => ({ index: g.index, pciBusId: g.pciBusId }));
}

/**
 * Writes every phase of a fault variant into the same directory (so the sysfs
 * root, and with it the snapshot identity, stays the same) and collects after
 * each, carrying the state like the agent does. Returns every collection.
 */
export function runFault(
  dir: string,
  fault: FaultName,
  options: { expectations?: FabricExpectations; startMs?: number; previous?: FabricCounterState } = {},
): FabricCollection[] {
  const variant = FAULTS[fault];
  const start = options.startMs ?? T0_MS;
  // A healthy read first, so single-phase faults are judged with counter history too.
  const phases = [{}, ...variant.phases];
  let state = options.previous;
  const results: FabricCollection[] = [];
  phases.forEach((overrides, i) => {
    const paths = writeHostFixture(dir, variant.model, overrides);
    const atMs = start + (i === 0 ? 0 : 60_000 + (i - 1) * variant.phaseIntervalMs);
    const c = collectFabric(
      state,
      { sysfsRoot: paths.sysfsRoot, procRoot: paths.procRoot, clock: () => atMs, expectations: options.expectations },
      gpusOf(variant.model),
    );
    state = c.state;
    results.push(c);
  });
  return results;
}

export function portHealth(c: FabricCollection, key: string) {
  const p = c.health.ports.find((x) => x.key === key);
  if (!p) throw new Error(`no port ${key} in ${c.health.ports.map((x) => x.key).join(", ")}`);
  return p;
}

/** A healthy InfiniBand NDR port reading, to be overridden per case. */
export function ibPort(overrides: Partial<RdmaPortReading> = {}): RdmaPortReading {
  return {
    device: "mlx5_0",
    port: 1,
    key: "mlx5_0/1",
    state: parsePortState("4: ACTIVE"),
    physState: parsePhysState("5: LinkUp"),
    rate: parseRate("400 Gb/sec (4X NDR)"),
    linkLayer: "InfiniBand",
    lid: 0x1c,
    smLid: 1,
    lmc: 0,
    smSl: 0,
    capMask: 0xa751e848,
    defaultGid: undefined,
    gidTypes: ["IB/RoCE v1"],
    gidNetdev: undefined,
    umad: "umad0",
    counters: { symbol_error: 0n, link_downed: 1n, port_rcv_errors: 0n, port_xmit_data: 1000n, port_rcv_data: 1000n },
    hwCounters: { rnr_nak_retry_err: 0n, local_ack_timeout_err: 0n },
    hwCountersLifespanMs: 10,
    extendedCounters: true,
    ...overrides,
  };
}

export function device(ports: RdmaPortReading[], overrides: Partial<RdmaDeviceReading> = {}): RdmaDeviceReading {
  const name = ports[0]?.device ?? "mlx5_0";
  return {
    name,
    hcaType: "MT4129",
    fwVersion: "28.41.1000",
    boardId: "MT_0000000838",
    nodeGuid: undefined,
    nodeType: "CA",
    pciAddress: "0000:18:00.0",
    pciPath: "/devices/pci0000:15/0000:15:01.0/0000:16:00.0/0000:17:00.0/0000:18:00.0",
    numaNode: 0,
    pcieLink: { currentSpeedGTs: 32, currentWidth: 16, maxSpeedGTs: 32, maxWidth: 16 },
    netdevs: ["ibp24s0"],
    uverbs: "uverbs0",
    ports,
    ...overrides,
  };
}
