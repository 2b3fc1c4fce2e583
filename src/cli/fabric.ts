import { constants } from "node:fs";
import { access, mkdir } from "node:fs/promises";
import { resolve } from "node:path";
import { Command, CommanderError, InvalidArgumentError } from "commander";
import { errorMessage, TesseraError } from "../errors.js";
import { collectFabric, type FabricCollection } from "../fabric/collect.js";
import { type FabricExpectations, loadExpectedFabric } from "../fabric/expect-config.js";
import { type GpuSource, sysfsGpuSource } from "../fabric/gpu-source.js";
import { exitCodeFor, type PortHealth } from "../fabric/health.js";
import { formatRate } from "../fabric/parse.js";
import { DEFAULT_PROC_ROOT, DEFAULT_SYSFS_ROOT, type RdmaDeviceReading, type RdmaPortReading } from "../fabric/read.js";
import { type FabricCounterState, loadSnapshots, saveSnapshots } from "../fabric/snapshot-store.js";
import { PCI_DISTANCES } from "../fabric/topology.js";
import { type OutputFormat, parseOutputFormat, renderTable, toJson } from "./table.js";

export const DEFAULT_FABRIC_STATE_DIR = "/var/lib/tessera/fabric";
/** Exit status when the fabric could not be evaluated at all (bad flags, bad --expect file). */
export const EXIT_NOT_EVALUATED = 3;

export interface FabricCommandOptions {
  sysfsRoot: string;
  procRoot: string;
  output: OutputFormat;
  expect?: string;
  stateDir: string;
  /** false with --no-state. */
  state: boolean;
}

export interface FabricCommandDeps {
  /** Where GPUs come from; the sysfs PCI scan until NVML is wired in. */
  gpuSource?: (sysfsRoot: string) => GpuSource;
  clock?: () => number;
  /** Output sinks; default process.stdout / process.stderr. */
  stdout?: (text: string) => void;
  stderr?: (text: string) => void;
}

export interface FabricRun {
  output: string;
  exitCode: number;
  collection: FabricCollection;
}

const HELP_AFTER = `
Reads /sys/class/infiniband (ports, PMA and hw counters), judges every port
(healthy, degraded, flapping, down) and shows each GPU's PCIe distance to
every RDMA NIC (PIX, PXB, PHB, NODE, SYS as in nvidia-smi topo -m). GPUs whose
nearest healthy NIC is farther than PXB are flagged: NCCL will not use
GPUDirect RDMA there. Counter rates need two reads: snapshots are kept in
--state-dir between runs (with the boot id, so a reboot is not a reset).

--expect file (YAML):
  version: 1
  ports:            # each listed port must exist; a missing one is critical
    - { device: mlx5_0, port: 1, linkLayer: InfiniBand, minRateGbps: 400, width: 4X, speed: NDR, role: compute }
  rules:            # e.g. an H100 host needs 8 InfiniBand ports up at >= 400 Gb/s
    - { linkLayer: InfiniBand, minPorts: 8, minRateGbps: 400 }
  ignore: [mlx5_7]  # shown, not judged
  thresholds:       # replace the defaults of the counters named
    counters: [{ counter: symbol_error, maxIncrements: 10, window: 1s, severity: warning }]
    disable: [port_xmit_discards]
    flap: { minDownEvents: 3, window: 12h }

Exit status:
  0  every port healthy and every expectation met
  1  a port is degraded or flapping
  2  a port is down, or an expected port is missing / too few ports are up
  3  the fabric could not be evaluated (invalid flags or --expect file)
`;

export function fabricCommand(deps: FabricCommandDeps = {}): Command {
  return new Command("fabric")
    .description("InfiniBand/RDMA link health per port and GPU↔NIC PCIe topology, from sysfs")
    .option("--sysfs-root <dir>", "sysfs to read (e.g. a fixture tree)", DEFAULT_SYSFS_ROOT)
    .option("--proc-root <dir>", "procfs to read the boot id from", DEFAULT_PROC_ROOT)
    .option("-o, --output <format>", "table or json", parseOutputOption, "table")
    .option("--expect <file>", "YAML file describing the expected fabric (see below)")
    .option("--state-dir <dir>", "directory for counter snapshots between runs", DEFAULT_FABRIC_STATE_DIR)
    .option("--no-state", "neither read nor write counter snapshots (no rates)")
    .addHelpText("after", HELP_AFTER)
    .exitOverride((err) => {
      // Usage errors must not read as "degraded" (1) to scripts.
      if (err.exitCode === 0) throw err;
      throw new CommanderError(EXIT_NOT_EVALUATED, err.code, err.message);
    })
    .action(async (options: FabricCommandOptions) => {
      const stdout = deps.stdout ?? ((text: string) => process.stdout.write(text));
      const stderr = deps.stderr ?? ((text: string) => process.stderr.write(text));
      try {
        const run = await runFabric(options, deps);
        stdout(run.output);
        process.exitCode = run.exitCode;
      } catch (err) {
        if (!(err instanceof TesseraError)) throw err;
        stderr(`tessera fabric: ${err.message} [${err.code}]\n`);
        process.exitCode = EXIT_NOT_EVALUATED;
      }
    });
}

function parseOutputOption(value: string): OutputFormat {
  try {
    return parseOutputFormat(value);
  } catch (err) {
    throw new InvalidArgumentError(errorMessage(err));
  }
}

/** The command without commander and without touching process state. */
export async function runFabric(options: FabricCommandOptions, deps: FabricCommandDeps = {}): Promise<FabricRun> {
  const sysfsRoot = resolve(options.sysfsRoot);
  const clock = deps.clock ?? Date.now;
  const expectations: FabricExpectations | undefined = options.expect
    ? await loadExpectedFabric(options.expect)
    : undefined;
  const notes: string[] = [];

  let previous: FabricCounterState | undefined;
  let stateDir: string | undefined;
  if (options.state) {
    const problem = await unwritable(options.stateDir);
    if (problem) {
      notes.push(`counter rates skipped: state dir ${options.stateDir} is not writable (${problem}); pass --state-dir`);
    } else {
      stateDir = options.stateDir;
      const loaded = await loadSnapshots(stateDir);
      if (loaded.status === "ok") previous = loaded.state;
      else if (loaded.status === "corrupt") notes.push(`ignored counter snapshot ${loaded.path}: ${loaded.reason}`);
    }
  } else {
    notes.push("counter rates skipped (--no-state)");
  }

  const gpus = await (deps.gpuSource ?? sysfsGpuSource)(sysfsRoot).listGpus();
  const collection = collectFabric(previous, { sysfsRoot, procRoot: options.procRoot, clock, expectations }, gpus);
  if (stateDir) {
    try {
      await saveSnapshots(stateDir, collection.state, collection.atMs);
    } catch (err) {
      notes.push(`counter snapshot not saved: ${errorMessage(err)}`);
    }
  }
  const exitCode = exitCodeFor(collection.health.status);
  const output =
    options.output === "json"
      ? `${toJson(fabricJson(collection, notes, exitCode))}\n`
      : `${renderFabricText(collection, notes, stateDir === undefined)}\n`;
  return { output, exitCode, collection };
}

/** undefined when the directory exists (or can be created) and is writable; else the reason. */
async function unwritable(dir: string): Promise<string | undefined> {
  try {
    await mkdir(dir, { recursive: true, mode: 0o750 });
    await access(dir, constants.W_OK);
    return undefined;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code ?? errorMessage(err);
  }
}

// ── rendering ────────────────────────────────────────────────────────────

/** ibstat's names for port states. */
const IBSTAT_STATE: Record<string, string> = {
  NOP: "Nop",
  DOWN: "Down",
  INIT: "Initializing",
  ARMED: "Armed",
  ACTIVE: "Active",
  ACTIVE_DEFER: "ActiveDefer",
};

interface PortRow {
  device: RdmaDeviceReading;
  port: RdmaPortReading;
  health: PortHealth;
}

function portRows(c: FabricCollection): PortRow[] {
  const health = new Map(c.health.ports.map((p) => [p.key, p]));
  return c.reading.devices.flatMap((device) =>
    device.ports.flatMap((port) => {
      const h = health.get(port.key);
      return h ? [{ device, port, health: h }] : [];
    }),
  );
}

const fmtGbps = (n: number | undefined) => (n === undefined ? "-" : n >= 100 ? n.toFixed(0) : n.toFixed(1));

export function renderFabricText(
  c: FabricCollection,
  extraNotes: readonly string[] = [],
  ratesSkipped = false,
): string {
  const out: string[] = [];
  const rows = portRows(c);
  const counts = new Map<string, number>();
  for (const r of rows) counts.set(r.health.verdict, (counts.get(r.health.verdict) ?? 0) + 1);
  const summary = [...counts].map(([v, n]) => `${n} ${v}`).join(", ");
  out.push(
    `Fabric: ${c.health.status.toUpperCase()} (${rows.length} ports: ${summary || "none"}${
      c.health.problems.length ? `; ${c.health.problems.length} problem(s)` : ""
    })`,
  );
  out.push("");
  out.push(
    renderTable(
      [
        "DEVICE",
        "PORT",
        "LINK LAYER",
        "STATE",
        "PHYSICAL STATE",
        "RATE",
        "LID",
        "SM LID",
        "NETDEV",
        "NUMA",
        "PCI",
        "TX Gb/s",
        "RX Gb/s",
        "HEALTH",
        "REASONS",
      ],
      rows.map(({ device, port, health }) => [
        device.name,
        String(port.port),
        port.linkLayer ?? "?",
        port.state ? (IBSTAT_STATE[port.state.name] ?? port.state.name) : "?",
        port.physState?.name ?? "?",
        port.rate ? formatRate(port.rate) : "?",
        port.linkLayer === "InfiniBand" && port.lid !== undefined ? String(port.lid) : "-",
        port.linkLayer === "InfiniBand" && port.smLid !== undefined ? String(port.smLid) : "-",
        (port.gidNetdev ? [port.gidNetdev] : device.netdevs).join(",") || "-",
        device.numaNode === undefined ? "-" : String(device.numaNode),
        device.pciAddress ?? "-",
        fmtGbps(health.traffic?.xmitGbps),
        fmtGbps(health.traffic?.rcvGbps),
        health.ignored ? `${health.verdict} (ignored)` : health.verdict,
        health.reasons.map((r) => r.message).join("; ") || "-",
      ]),
    ),
  );
  if (c.health.problems.length > 0) {
    out.push("", "Problems:");
    for (const p of c.health.problems) out.push(`  ${p.severity}: ${p.message}`);
  }
  const notes = collectNotes(c, extraNotes, ratesSkipped);
  if (notes.length > 0) {
    out.push("", "Notes:");
    for (const n of notes) out.push(`  ${n}`);
  }
  if (c.topology) out.push("", ...renderTopology(c));
  return out.join("\n");
}

/** Per-port notes folded: one line per distinct note, naming its ports (or "all ports"). */
function collectNotes(c: FabricCollection, extra: readonly string[], ratesSkipped: boolean): string[] {
  const byNote = new Map<string, string[]>();
  for (const p of c.health.ports) {
    for (const n of p.notes) {
      // Without snapshots every read is a first sample; the skip note already says so.
      if (ratesSkipped && n.startsWith("first sample")) continue;
      byNote.set(n, [...(byNote.get(n) ?? []), p.key]);
    }
  }
  const lines = [...extra];
  for (const [note, keys] of byNote) {
    lines.push(`${note} (${keys.length === c.health.ports.length ? "all ports" : keys.join(", ")})`);
  }
  for (const p of c.reading.problems) lines.push(`unreadable: ${p.path}: ${p.message}`);
  return lines;
}

function renderTopology(c: FabricCollection): string[] {
  const topo = c.topology;
  if (!topo) return [];
  if (topo.gpus.length === 0) return ["GPU × NIC: no NVIDIA GPUs found under bus/pci/devices"];
  const nicIndex = new Map(topo.nics.map((n, i) => [n.device, i]));
  const headers = ["", ...topo.nics.map((_, i) => `NIC${i}`), "NUMA", "NEAREST HEALTHY NIC", "GPUDirect RDMA"];
  const rows = topo.gpus.map((g) => [
    `GPU${g.index}`,
    ...g.distances.map((d) => d.distance ?? "?"),
    g.numaNode === undefined ? "N/A" : String(g.numaNode),
    g.nearestHealthyNic
      ? `NIC${nicIndex.get(g.nearestHealthyNic.device)} (${g.nearestHealthyNic.device}) ${g.nearestHealthyNic.distance}`
      : "none",
    g.gpuDirectRdma ? "yes" : "NO",
  ]);
  const out = ["GPU × NIC PCIe distance (nvidia-smi topo -m legend)", renderTable(headers, rows), "", "NIC Legend:"];
  for (const [i, n] of topo.nics.entries()) {
    const state = n.healthy ? "" : "  (not healthy)";
    const skip = n.candidate ? "" : "  (not a compute NIC)";
    out.push(`  NIC${i}: ${n.device}${state}${skip}`);
  }
  out.push("", "Legend:");
  const legend: Record<(typeof PCI_DISTANCES)[number], string> = {
    PIX: "at most a single PCIe bridge",
    PXB: "multiple PCIe bridges without traversing the PCIe Host Bridge",
    PHB: "PCIe and a PCIe Host Bridge (typically the CPU)",
    NODE: "PCIe and the interconnect between PCIe Host Bridges within a NUMA node",
    SYS: "PCIe and the SMP interconnect between NUMA nodes (e.g. QPI/UPI)",
  };
  for (const d of PCI_DISTANCES) out.push(`  ${d.padEnd(4)} = Connection traversing ${legend[d]}`);
  const flagged = topo.gpus.filter((g) => g.flag);
  if (flagged.length > 0) {
    out.push("", "Flagged GPUs:");
    for (const g of flagged) out.push(`  GPU${g.index} (${g.pciBusId}): ${g.flag}`);
  }
  return out;
}

function fabricJson(c: FabricCollection, extraNotes: readonly string[], exitCode: number): unknown {
  return {
    status: c.health.status,
    exitCode,
    atMs: c.atMs,
    bootId: c.bootId ?? null,
    sysfsRoot: c.reading.sysfsRoot,
    readDurationMs: c.reading.durationMs,
    ports: portRows(c).map(({ device, port, health }) => ({
      ...health,
      state: port.state ?? null,
      physState: port.physState ?? null,
      lid: port.lid ?? null,
      smLid: port.smLid ?? null,
      gidTypes: port.gidTypes,
      netdevs: port.gidNetdev ? [port.gidNetdev] : device.netdevs,
      pciAddress: device.pciAddress ?? null,
      numaNode: device.numaNode ?? null,
      hcaType: device.hcaType ?? null,
      fwVersion: device.fwVersion ?? null,
      uverbs: device.uverbs ?? null,
      umad: port.umad ?? null,
    })),
    problems: c.health.problems,
    notes: extraNotes,
    readProblems: c.reading.problems,
    topology: c.topology ?? null,
  };
}
