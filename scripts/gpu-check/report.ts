// Text for summary.txt and the terminal: steps, MIG profiles as the driver reported them, and the
// comparison table, which comes last. Pure functions.
import { type CompareRow, countVerdicts } from "./compare.js";
import type { Scalar } from "./sources.js";

/** One collection step of run.sh, as written to its steps file (tab-separated: name, rc, seconds, file). */
export interface StepResult {
  name: string;
  exitCode: number;
  seconds: number;
  file: string;
  /** The end of what the step wrote to stderr. */
  stderrTail?: string;
}

/** Reads run.sh's steps file; lines that do not have four tab-separated fields are reported as errors. */
export function parseSteps(text: string): StepResult[] {
  return text
    .split(/\r?\n/)
    .filter((line) => line.trim() !== "")
    .map((line) => {
      const [name, rc, seconds, file, ...rest] = line.split("\t");
      if (name === undefined || rc === undefined || seconds === undefined || file === undefined || rest.length > 0) {
        throw new Error(`steps file: expected "name<TAB>rc<TAB>seconds<TAB>file", got: ${line}`);
      }
      return { name, exitCode: Number.parseInt(rc, 10), seconds: Number.parseFloat(seconds), file };
    });
}

function cell(v: Scalar | null): string {
  if (v === null) return "—";
  const text = typeof v === "number" && !Number.isInteger(v) ? v.toFixed(2) : String(v);
  return text.length > 40 ? `${text.slice(0, 39)}…` : text;
}

function table(header: readonly string[], body: readonly (readonly string[])[]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((r) => (r[i] ?? "").length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join("  ")
      .trimEnd();
  return [line(header), line(widths.map((w) => "-".repeat(w))), ...body.map(line)];
}

/**
 * The comparison table, one row per GPU and field. When that is longer than `maxRows` (many GPUs),
 * it prints the mismatching rows (at most `maxRows`) and then one row per field with its verdict
 * counts instead; the full table is in summary.txt and compare.json. Totals come last.
 */
export function formatComparison(rows: readonly CompareRow[], options: { maxRows?: number } = {}): string {
  const c = countVerdicts(rows);
  const totals = `${c.match} match, ${c.mismatch} mismatch, ${c.absent} absent`;
  if (options.maxRows === undefined || rows.length <= options.maxRows) {
    return [...rowTable(rows), totals].join("\n");
  }
  const mismatches = rows.filter((r) => r.verdict === "mismatch");
  const lines: string[] = [];
  if (mismatches.length > 0) {
    lines.push(...rowTable(mismatches.slice(0, options.maxRows)));
    if (mismatches.length > options.maxRows) lines.push(`(${mismatches.length - options.maxRows} more mismatches)`);
    lines.push("");
  }
  lines.push(...fieldTable(rows), `(per-GPU rows: summary.txt, compare.json)`, totals);
  return lines.join("\n");
}

function rowTable(rows: readonly CompareRow[]): string[] {
  const body = rows.map((r) => [
    r.gpu,
    r.field,
    cell(r.tessera),
    cell(r.nvidiaSmi),
    cell(r.pynvml),
    r.verdict.toUpperCase(),
    r.note ?? "",
  ]);
  return table(["gpu", "field", "tessera", "nvidia-smi", "pynvml", "verdict", "note"], body);
}

/** One row per field: how many GPUs match, mismatch or lack it, and which GPUs mismatch. */
function fieldTable(rows: readonly CompareRow[]): string[] {
  const byField = new Map<string, CompareRow[]>();
  for (const r of rows) byField.set(r.field, [...(byField.get(r.field) ?? []), r]);
  const body = [...byField].map(([field, group]) => {
    const c = countVerdicts(group);
    const bad = group.filter((r) => r.verdict === "mismatch").map((r) => r.gpu);
    const verdict = c.mismatch > 0 ? "MISMATCH" : c.absent > 0 ? (c.match > 0 ? "PARTLY ABSENT" : "ABSENT") : "MATCH";
    return [field, String(c.match), String(c.mismatch), String(c.absent), verdict, bad.join(" ")];
  });
  return table(["field", "match", "mismatch", "absent", "verdict", "mismatching on"], body);
}

export function formatSteps(steps: readonly StepResult[]): string {
  const body = steps.map((s) => [
    s.name,
    s.exitCode === 0 ? "ok" : `FAILED (exit ${s.exitCode})`,
    `${s.seconds.toFixed(1)} s`,
    s.file,
    firstLine(s.stderrTail ?? ""),
  ]);
  return table(["step", "status", "time", "output", "stderr"], body).join("\n");
}

function firstLine(text: string): string {
  const line = text.trim().split(/\r?\n/).at(-1) ?? "";
  return line.length > 100 ? `${line.slice(0, 99)}…` : line;
}

type Json = unknown;

function obj(v: Json): Record<string, Json> | undefined {
  return typeof v === "object" && v !== null && !Array.isArray(v) ? (v as Record<string, Json>) : undefined;
}

function errorOf(v: Json): string | undefined {
  const o = obj(v);
  return typeof o?.error === "string" ? o.error : undefined;
}

/** The GPU-instance profiles pynvml_dump.py recorded, one line per profile index (errors grouped). */
export function formatMigProfiles(pynvmlDump: Json): string {
  const lines: string[] = [];
  const gpus = obj(pynvmlDump)?.gpus;
  if (!Array.isArray(gpus)) return "MIG profiles: no pynvml data";
  for (const gpu of gpus) {
    const g = obj(gpu) ?? {};
    const mig = obj(g.migMode);
    const state = (v: Json) => (v === 1 ? "Enabled" : v === 0 ? "Disabled" : fmt(v));
    const mode =
      errorOf(g.migMode) ?? (mig === undefined ? "?" : `current ${state(mig.current)}, pending ${state(mig.pending)}`);
    lines.push(
      `GPU ${String(g.index)} (${String(g.name)}): MIG mode ${mode}; max MIG devices ${fmt(g.maxMigDeviceCount)}`,
    );
    const profiles = Array.isArray(g.migProfiles) ? g.migProfiles : [];
    let pending: { from: number; to: number; error: string } | undefined;
    const flush = () => {
      if (pending === undefined) return;
      const range = pending.from === pending.to ? `${pending.from}` : `${pending.from}-${pending.to}`;
      lines.push(`  index ${range}: ${pending.error}`);
      pending = undefined;
    };
    for (const p of profiles) {
      const prof = obj(p) ?? {};
      const index = typeof prof.index === "number" ? prof.index : -1;
      const info = prof.info;
      const error = errorOf(info);
      if (error !== undefined) {
        if (pending !== undefined && pending.error === error && pending.to === index - 1) pending.to = index;
        else {
          flush();
          pending = { from: index, to: index, error };
        }
        continue;
      }
      flush();
      const i = obj(info) ?? {};
      const placements = Array.isArray(prof.placements)
        ? prof.placements.map((pl) => `${fmt(obj(pl)?.start)}:${fmt(obj(pl)?.size)}`).join(" ") || "none"
        : (errorOf(prof.placements) ?? "?");
      const name = typeof i.name === "string" && i.name !== "" ? ` "${i.name}"` : "";
      lines.push(
        `  index ${index}: id ${fmt(i.id)}${name}, ${fmt(i.sliceCount)} slices, up to ${fmt(i.instanceCount)}, ` +
          `${fmt(i.memorySizeMB)} MiB, ${fmt(i.multiprocessorCount)} SMs; placements ${placements}; ` +
          `free ${fmt(prof.remainingCapacity)}`,
      );
    }
    flush();
  }
  return lines.join("\n");
}

function fmt(v: Json): string {
  if (v === undefined || v === null) return "?";
  const error = errorOf(v);
  if (error !== undefined) return error;
  return typeof v === "object" ? JSON.stringify(v) : String(v);
}

export interface SummaryParts {
  title: string;
  facts: readonly [string, string][];
  steps: readonly StepResult[];
  migProfiles?: string;
  bench?: string;
  rows: readonly CompareRow[];
}

/** summary.txt: facts, steps, MIG profiles, bench, then the comparison table, last. */
export function formatSummary(parts: SummaryParts, options: { maxRows?: number } = {}): string {
  const out: string[] = [parts.title, ""];
  const width = Math.max(0, ...parts.facts.map(([k]) => k.length));
  for (const [k, v] of parts.facts) out.push(`${k.padEnd(width)}  ${v}`);
  out.push("", "Steps", formatSteps(parts.steps), "");
  if (parts.migProfiles !== undefined) out.push("MIG GPU-instance profiles (pynvml, read-only)", parts.migProfiles, "");
  if (parts.bench !== undefined) out.push("nvml-sweep bench (read-only)", parts.bench, "");
  out.push("Comparison: tessera inspect vs nvidia-smi vs pynvml", formatComparison(parts.rows, options));
  return `${out.join("\n")}\n`;
}
