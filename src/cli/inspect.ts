import { create } from "@bufbuild/protobuf";
import { Command } from "commander";
import { GetNodeRequestSchema } from "../gen/tessera/v1/agent_pb.js";
import { call, connectAgent } from "../rpc/client.js";
import { collectInventory } from "../telemetry/inventory.js";
import type { GpuReport, HostInventory } from "../telemetry/inventory-types.js";
import { inventoryFromNode, renderAgentExtras } from "./agent-inventory.js";
import { addNvmlOptions, type NvmlCliOptions, openNvmlFromOptions } from "./nvml-options.js";
import { parseOutputFormat, renderTable, toJson } from "./table.js";

interface AgentCliOptions {
  agent?: string;
  ca?: string;
  cert?: string;
  key?: string;
  insecure?: boolean;
}

export function inspectCommand(): Command {
  const cmd = new Command("inspect")
    .description("What nvidia-smi -q tells an operator: every GPU, its MIG devices and processes (read-only)")
    .option("-o, --output <format>", "table or json", "table")
    .option(
      "--agent <address>",
      "ask a running tessera-agent (unix:///run/tessera/agent.sock or host:port) instead of NVML",
    )
    .option("--ca <file>", "with --agent host:port: CA of the agent's certificate")
    .option("--cert <file>", "with --agent host:port: this client's certificate")
    .option("--key <file>", "with --agent host:port: this client's key")
    .option("--insecure", "with --agent host:port: plaintext, for an agent started with --dev-insecure");
  addNvmlOptions(cmd);
  return cmd.action(async (opts: NvmlCliOptions & AgentCliOptions & { output: string }) => {
    const format = parseOutputFormat(opts.output);
    if (opts.agent !== undefined) {
      await inspectAgent(opts.agent, opts, format);
      return;
    }
    const { nvml, preset } = await openNvmlFromOptions(opts);
    try {
      const inventory = collectInventory(nvml, preset === undefined ? {} : { preset });
      process.stdout.write(`${format === "json" ? toJson(inventory) : renderInventory(inventory)}\n`);
    } finally {
      nvml.shutdown();
    }
  });
}

async function inspectAgent(address: string, opts: AgentCliOptions, format: "table" | "json"): Promise<void> {
  const client = await connectAgent({ address, ca: opts.ca, cert: opts.cert, key: opts.key, insecure: opts.insecure });
  try {
    const res = await call(client, "getNode", create(GetNodeRequestSchema, {}));
    const inventory = inventoryFromNode(res);
    const out =
      format === "json"
        ? toJson({ ...inventory, agent: { address, nodeId: res.node?.nodeId, leases: res.leases.length } })
        : `${renderInventory(inventory)}\n\n${renderAgentExtras(res, address)}`;
    process.stdout.write(`${out}\n`);
  } finally {
    client.close();
  }
}

const dash = "-";

function orDash(v: number | string | undefined, unit = ""): string {
  return v === undefined ? dash : `${v}${unit}`;
}

function mig(g: GpuReport): string {
  if (!g.mig) return "n/a";
  const now = g.mig.currentEnabled ? "on" : "off";
  return g.mig.pendingEnabled === g.mig.currentEnabled ? now : `${now}→${g.mig.pendingEnabled ? "on" : "off"}`;
}

function pcie(g: GpuReport): string {
  const p = g.pcie;
  return `Gen${orDash(p.currentGeneration)}x${orDash(p.currentWidth)} (max Gen${orDash(p.maxGeneration)}x${orDash(p.maxWidth)})`;
}

function throttle(g: GpuReport): string {
  const r = g.clockEventReasons;
  if (r === undefined) return dash;
  return r.length === 0 ? "none" : r.join(",");
}

/** The human view: identity, telemetry, MIG devices, processes. */
export function renderInventory(inv: HostInventory): string {
  const head = [
    `Driver ${inv.driverVersion}   NVML ${inv.nvmlVersion}   CUDA ${inv.cudaDriverVersion}   GPUs ${inv.gpus.length + inv.unavailableGpus.length}`,
    inv.simulated
      ? `Simulated host${inv.preset ? ` (preset ${inv.preset})` : ""}: ${inv.library}`
      : `Library ${inv.library}`,
  ];
  const identity = renderTable(
    ["GPU", "NAME", "UUID", "BUS ID", "ARCH", "CC", "SERIAL"],
    inv.gpus.map((g) => [
      String(g.index),
      g.name,
      g.uuid,
      g.pciBusId,
      g.architecture,
      g.computeCapability,
      g.serial ?? dash,
    ]),
  );
  const telemetry = renderTable(
    ["GPU", "TEMP", "POWER", "MEMORY USED/TOTAL", "UTIL", "SM/MEM MHz", "PCIE", "ECC VOL C/U", "MIG", "CLOCK EVENTS"],
    inv.gpus.map((g) => [
      String(g.index),
      orDash(g.temperatureC, "C"),
      `${orDash(g.powerDrawWatts?.toFixed(0), "W")} / ${orDash(g.powerLimitWatts?.toFixed(0), "W")}`,
      g.memory ? `${g.memory.usedMiB} / ${g.memory.totalMiB} MiB` : dash,
      g.utilization ? `${g.utilization.gpuPercent}%` : "n/a",
      `${orDash(g.clocksMHz.sm)}/${orDash(g.clocksMHz.memory)} (max ${orDash(g.maxClocksMHz.sm)}/${orDash(g.maxClocksMHz.memory)})`,
      pcie(g),
      g.ecc.volatile ? `${g.ecc.volatile.corrected}/${g.ecc.volatile.uncorrected}` : dash,
      mig(g),
      throttle(g),
    ]),
  );
  const parts = [head.join("\n"), identity, telemetry];
  const migRows = inv.gpus.flatMap((g) =>
    (g.mig?.devices ?? []).map((m) => [
      `${g.index}:${m.index}`,
      m.profile,
      `${m.placement.start}:${m.placement.size}`,
      String(m.gpuInstanceId),
      String(m.computeInstanceId),
      m.uuid,
      m.memory ? `${m.memory.usedMiB} / ${m.memory.totalMiB} MiB` : dash,
    ]),
  );
  if (migRows.length > 0)
    parts.push(renderTable(["MIG", "PROFILE", "PLACEMENT", "GI", "CI", "UUID", "MEMORY USED/TOTAL"], migRows));
  const procRows = inv.gpus.flatMap((g) => {
    const whole = g.processes.filter((p) => p.gpuInstanceId === undefined);
    const onMig = (g.mig?.devices ?? []).flatMap((m) =>
      m.processes.map((p) => ({ p, where: `${g.index}:${m.index}` })),
    );
    return [...whole.map((p) => ({ p, where: String(g.index) })), ...onMig].map(({ p, where }) => [
      where,
      String(p.pid),
      p.name ?? dash,
      orDash(p.usedMemoryMiB, " MiB"),
    ]);
  });
  parts.push(
    procRows.length > 0 ? renderTable(["DEVICE", "PID", "PROCESS", "MEMORY"], procRows) : "No running processes.",
  );
  for (const u of inv.unavailableGpus) parts.push(`GPU ${u.index} unavailable: ${u.error}`);
  return parts.join("\n\n");
}
