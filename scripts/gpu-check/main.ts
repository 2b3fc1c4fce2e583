// The I/O shell of the comparison: reads what run.sh collected in an output folder, writes
// compare.json and summary.txt there, prints the summary (table last). Exit 0 only when every step
// ran and nothing mismatched.
//
//   node compare.mjs --dir OUTDIR [--steps FILE] [--logs DIR] [--max-rows N]
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import type { HostInventory } from "../../src/telemetry/inventory-types.js";
import { compareSources, countVerdicts, type InventoryFindings } from "./compare.js";
import { formatMigProfiles, formatSummary, parseSteps, type StepResult } from "./report.js";
import {
  inventorySchemaProblems,
  inventorySource,
  mergeNvidiaSmi,
  parseInventory,
  parseNvidiaSmiCsv,
  parseNvidiaSmiXml,
  parsePynvmlDump,
  type SourceReport,
  unavailableSource,
} from "./sources.js";

const STDERR_TAIL_CHARS = 2000;

function readIfPresent(path: string): string | undefined {
  return existsSync(path) ? readFileSync(path, "utf8") : undefined;
}

function source(dir: string, file: string, parse: (text: string) => SourceReport): SourceReport {
  const text = readIfPresent(join(dir, file));
  if (text === undefined) return unavailableSource(`${file} missing`);
  if (text.trim() === "") return unavailableSource(`${file} is empty`);
  try {
    return parse(text);
  } catch (err) {
    return unavailableSource(`${file}: ${err instanceof Error ? err.message : String(err)}`);
  }
}

function main(argv: string[]): number {
  const { values } = parseArgs({
    args: argv,
    options: {
      dir: { type: "string" },
      steps: { type: "string" },
      logs: { type: "string" },
      "max-rows": { type: "string", default: "60" },
    },
  });
  const dir = values.dir;
  if (dir === undefined) {
    process.stderr.write("usage: compare.mjs --dir OUTDIR [--steps FILE] [--logs DIR] [--max-rows N]\n");
    return 2;
  }

  const steps: StepResult[] = values.steps === undefined ? [] : parseSteps(readFileSync(values.steps, "utf8"));
  for (const step of steps) {
    const log = values.logs === undefined ? undefined : readIfPresent(join(values.logs, `${step.name}.err`));
    if (log !== undefined && log.trim() !== "") step.stderrTail = log.slice(-STDERR_TAIL_CHARS);
  }

  let inventory: HostInventory | undefined;
  const findings: InventoryFindings = {};
  const tessera = source(dir, "inventory.json", (text) => {
    inventory = parseInventory(text);
    findings.simulated = inventory.simulated;
    findings.schemaProblems = inventorySchemaProblems(inventory);
    const errors: Record<string, string> = {};
    const unavailable: unknown = inventory.unavailableGpus;
    if (Array.isArray(unavailable)) {
      for (const u of unavailable as HostInventory["unavailableGpus"]) errors[String(u.index)] = u.error;
    }
    findings.gpuErrors = errors;
    return inventorySource(inventory);
  });
  const nvidiaSmi = mergeNvidiaSmi(
    source(dir, "nvidia-smi.csv", (text) => parseNvidiaSmiCsv(text)),
    source(dir, "nvidia-smi-q.xml", parseNvidiaSmiXml),
  );
  const pynvmlText = readIfPresent(join(dir, "pynvml.json"));
  const pynvml = source(dir, "pynvml.json", parsePynvmlDump);
  const rows = compareSources({ tessera, nvidiaSmi, pynvml }, findings);
  const counts = countVerdicts(rows);

  let pynvmlDump: unknown;
  try {
    pynvmlDump = pynvmlText === undefined ? undefined : JSON.parse(pynvmlText);
  } catch {
    pynvmlDump = undefined;
  }
  const benchText = readIfPresent(join(dir, "bench.json"))?.trim();
  const sourceErrors = Object.fromEntries(
    Object.entries({ tessera, nvidiaSmi, pynvml })
      .filter(([, s]) => s.error !== undefined)
      .map(([name, s]) => [name, s.error]),
  );
  const gpuNames = [...new Set(nvidiaSmi.gpus.map((g) => g.fields.name?.value).filter((n) => n !== undefined))];
  const facts: [string, string][] = [
    ["date", new Date().toISOString()],
    ["host", hostname()],
    ["gpus (nvidia-smi)", gpuNames.length > 0 ? gpuNames.join(", ") : "?"],
    ["driver (nvidia-smi)", String(nvidiaSmi.host.driverVersion?.value ?? "?")],
    ["tessera library", inventory?.library ?? "?"],
    ["tessera simulated", inventory === undefined ? "?" : String(inventory.simulated)],
    ["node", process.version],
  ];
  for (const [name, error] of Object.entries(sourceErrors)) facts.push([`${name} unavailable`, String(error)]);
  const parts = {
    title: "Tessera read-only hardware check",
    facts,
    steps,
    migProfiles: pynvmlDump === undefined ? undefined : formatMigProfiles(pynvmlDump),
    bench: benchText === undefined || benchText === "" ? "no output" : benchText.slice(0, 2000),
    rows,
  };

  writeFileSync(
    join(dir, "compare.json"),
    `${JSON.stringify({ generatedAt: facts[0]?.[1], facts: Object.fromEntries(facts), steps, sourceErrors, counts, rows }, null, 2)}\n`,
  );
  writeFileSync(join(dir, "summary.txt"), formatSummary(parts));
  const maxRows = Number.parseInt(values["max-rows"], 10);
  process.stdout.write(formatSummary(parts, Number.isNaN(maxRows) ? {} : { maxRows }));

  const stepsFailed = steps.some((s) => s.exitCode !== 0);
  return counts.mismatch > 0 || stepsFailed ? 1 : 0;
}

process.exitCode = main(process.argv.slice(2));
