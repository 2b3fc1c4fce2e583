// Parses what each source says about the host into one shape, so that the comparison is a table
// lookup. Sources: `tessera inspect -o json` (HostInventory), `nvidia-smi --query-gpu … --format=csv`,
// `nvidia-smi -q -x`, and the pynvml dump written by pynvml_dump.py. Pure functions only.
import type { GpuReport, HostInventory } from "../../src/telemetry/inventory-types.js";

export type Scalar = string | number | boolean;

/** What one source says about one field: a value, or why it has none ("[N/A]", "NOT_SUPPORTED"). */
export interface Observation {
  value?: Scalar;
  /** The source's own words when it has no value. */
  reason?: string;
}

export const GPU_FIELDS = [
  "name",
  "uuid",
  "pciBusId",
  "pciDeviceId",
  "pciSubSystemId",
  "serial",
  "minorNumber",
  "architecture",
  "computeCapability",
  "memoryTotalMiB",
  "memoryReservedMiB",
  "maxClockGraphicsMHz",
  "maxClockSmMHz",
  "maxClockMemoryMHz",
  "maxClockVideoMHz",
  "powerLimitW",
  "enforcedPowerLimitW",
  "temperatureC",
  "shutdownTempC",
  "slowdownTempC",
  "gpuMaxTempC",
  "memoryMaxTempC",
  "migModeCurrent",
  "migModePending",
  "migDeviceCount",
  "eccModeCurrent",
  "eccModePending",
  "pcieGenMax",
  "pcieWidthMax",
  "pcieGenCurrent",
  "pcieWidthCurrent",
] as const;
export type GpuField = (typeof GPU_FIELDS)[number];

export const HOST_FIELDS = ["gpuCount", "driverVersion", "nvmlVersion", "cudaDriverVersion"] as const;
export type HostField = (typeof HOST_FIELDS)[number];

export type Observations<F extends string> = Partial<Record<F, Observation>>;

export interface SourceGpu {
  /** The source's own index for the GPU, when it has one. */
  index?: number;
  fields: Observations<GpuField>;
}

/** One source's view of the host. `error` is set when the source produced nothing usable. */
export interface SourceReport {
  host: Observations<HostField>;
  gpus: SourceGpu[];
  error?: string;
}

/** A source that could not be read at all (missing file, tool failed). */
export function unavailableSource(error: string): SourceReport {
  return { host: {}, gpus: [], error };
}

// ---- normalisation -----------------------------------------------------------------------------

/** NVML's bus id form: 8-digit domain, upper-case hex ("00000000:1B:00.0"); unknown shapes pass through trimmed. */
export function normalizePciBusId(raw: string): string {
  const text = raw.trim();
  const m = /^(?:([0-9a-f]{1,8}):)?([0-9a-f]{1,2}):([0-9a-f]{1,2})\.([0-9a-f])$/i.exec(text);
  if (m === null) return text;
  const hex = (s: string | undefined, width: number) => (s ?? "0").toUpperCase().padStart(width, "0");
  return `${hex(m[1], 8)}:${hex(m[2], 2)}:${hex(m[3], 2)}.${hex(m[4], 1)}`;
}

/** A 32-bit PCI id ("0x233010DE", "233010de" or a number) as "0x233010DE". */
export function normalizePciId(raw: string | number): string {
  const n = typeof raw === "number" ? raw : Number.parseInt(raw.trim().replace(/^0x/i, ""), 16);
  if (!Number.isInteger(n) || n < 0) return String(raw).trim();
  return `0x${n.toString(16).toUpperCase().padStart(8, "0")}`;
}

export function enabledState(on: boolean): "Enabled" | "Disabled" {
  return on ? "Enabled" : "Disabled";
}

/** NVML's CUDA driver version integer (13000) as "13.0". */
export function cudaVersionText(version: number): string {
  return `${Math.floor(version / 1000)}.${Math.floor((version % 1000) / 10)}`;
}

/** nvmlDeviceArchitecture_t names as nvml.h spells them (Tessera uses the same). */
export const NVML_ARCHITECTURES: Readonly<Record<number, string>> = {
  2: "Kepler",
  3: "Maxwell",
  4: "Pascal",
  5: "Volta",
  6: "Turing",
  7: "Ampere",
  8: "Ada",
  9: "Hopper",
  10: "Blackwell",
  13: "Rubin",
};

function value(v: Scalar | undefined | null): Observation | undefined {
  return v === undefined || v === null ? undefined : { value: v };
}

function setField<F extends string>(target: Observations<F>, field: F, obs: Observation | undefined): void {
  if (obs !== undefined) target[field] = obs;
}

// ---- tessera inspect -o json --------------------------------------------------------------------

/** Reads `tessera inspect -o json`; throws with the offending path when it is not a HostInventory. */
export function parseInventory(text: string): HostInventory {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new Error(`inventory is not JSON: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (!isObject(data)) throw new Error("inventory: expected an object");
  for (const key of ["library", "driverVersion", "nvmlVersion", "cudaDriverVersion"] as const) {
    if (typeof data[key] !== "string") throw new Error(`inventory.${key}: expected a string`);
  }
  if (typeof data.simulated !== "boolean") throw new Error("inventory.simulated: expected a boolean");
  if (!Array.isArray(data.gpus)) throw new Error("inventory.gpus: expected an array");
  data.gpus.forEach((gpu: unknown, i: number) => {
    if (!isObject(gpu)) throw new Error(`inventory.gpus[${i}]: expected an object`);
    if (typeof gpu.index !== "number") throw new Error(`inventory.gpus[${i}].index: expected a number`);
    for (const key of ["name", "uuid", "pciBusId"] as const) {
      if (typeof gpu[key] !== "string") throw new Error(`inventory.gpus[${i}].${key}: expected a string`);
    }
  });
  return data as unknown as HostInventory;
}

/**
 * Differences between an inventory and the HostInventory contract that parseInventory tolerates
 * (required fields and nested objects left out). Each is a finding for the report.
 */
export function inventorySchemaProblems(inventory: HostInventory): string[] {
  const problems: string[] = [];
  if (!Array.isArray((inventory as unknown as Record<string, unknown>).unavailableGpus)) {
    problems.push("unavailableGpus missing");
  }
  inventory.gpus.forEach((gpu, i) => {
    const g = gpu as unknown as Record<string, unknown>;
    for (const key of ["pciDeviceId", "pciSubSystemId", "architecture", "computeCapability"]) {
      if (typeof g[key] !== "string") problems.push(`gpus[${i}].${key} missing`);
    }
    for (const key of ["temperatureThresholdsC", "clocksMHz", "maxClocksMHz", "ecc", "pcie"]) {
      if (!isObject(g[key])) problems.push(`gpus[${i}].${key} missing`);
    }
    if (!Array.isArray(g.processes)) problems.push(`gpus[${i}].processes missing`);
  });
  return problems;
}

export function inventorySource(inventory: HostInventory): SourceReport {
  const host: Observations<HostField> = {};
  setField(host, "gpuCount", value(inventory.gpus.length));
  setField(host, "driverVersion", value(inventory.driverVersion));
  setField(host, "nvmlVersion", value(inventory.nvmlVersion));
  setField(host, "cudaDriverVersion", value(inventory.cudaDriverVersion));
  return { host, gpus: inventory.gpus.map(inventoryGpu) };
}

function inventoryGpu(gpu: GpuReport): SourceGpu {
  const f: Observations<GpuField> = {};
  setField(f, "name", value(gpu.name));
  setField(f, "uuid", value(gpu.uuid));
  setField(f, "pciBusId", value(normalizePciBusId(gpu.pciBusId)));
  setField(f, "pciDeviceId", value(gpu.pciDeviceId === undefined ? undefined : normalizePciId(gpu.pciDeviceId)));
  setField(
    f,
    "pciSubSystemId",
    value(gpu.pciSubSystemId === undefined ? undefined : normalizePciId(gpu.pciSubSystemId)),
  );
  setField(f, "serial", value(gpu.serial));
  setField(f, "minorNumber", value(gpu.minorNumber));
  setField(f, "architecture", value(gpu.architecture));
  setField(f, "computeCapability", value(gpu.computeCapability));
  setField(f, "memoryTotalMiB", value(gpu.memory?.totalMiB));
  setField(f, "memoryReservedMiB", value(gpu.memory?.reservedMiB));
  setField(f, "maxClockGraphicsMHz", value(gpu.maxClocksMHz?.graphics));
  setField(f, "maxClockSmMHz", value(gpu.maxClocksMHz?.sm));
  setField(f, "maxClockMemoryMHz", value(gpu.maxClocksMHz?.memory));
  setField(f, "maxClockVideoMHz", value(gpu.maxClocksMHz?.video));
  setField(f, "powerLimitW", value(gpu.powerLimitWatts));
  setField(f, "temperatureC", value(gpu.temperatureC));
  setField(f, "shutdownTempC", value(gpu.temperatureThresholdsC?.shutdown));
  setField(f, "slowdownTempC", value(gpu.temperatureThresholdsC?.slowdown));
  setField(f, "gpuMaxTempC", value(gpu.temperatureThresholdsC?.gpuMax));
  setField(f, "memoryMaxTempC", value(gpu.temperatureThresholdsC?.memoryMax));
  if (gpu.mig !== undefined) {
    setField(f, "migModeCurrent", value(enabledState(gpu.mig.currentEnabled)));
    setField(f, "migModePending", value(enabledState(gpu.mig.pendingEnabled)));
    setField(f, "migDeviceCount", value(gpu.mig.devices?.length));
  }
  const ecc = gpu.ecc;
  if (ecc?.enabled !== undefined) setField(f, "eccModeCurrent", value(enabledState(ecc.enabled)));
  if (ecc?.pendingEnabled !== undefined) setField(f, "eccModePending", value(enabledState(ecc.pendingEnabled)));
  setField(f, "pcieGenMax", value(gpu.pcie?.maxGeneration));
  setField(f, "pcieWidthMax", value(gpu.pcie?.maxWidth));
  setField(f, "pcieGenCurrent", value(gpu.pcie?.currentGeneration));
  setField(f, "pcieWidthCurrent", value(gpu.pcie?.currentWidth));
  return { index: gpu.index, fields: f };
}

// ---- nvidia-smi --query-gpu=… --format=csv[,noheader][,nounits] ----------------------------------

/** The columns `scripts/gpu-check/run.sh` asks for, in order (used when the CSV has no header). */
export const NVIDIA_SMI_QUERY_FIELDS = [
  "index",
  "name",
  "uuid",
  "pci.bus_id",
  "pci.device_id",
  "pci.sub_device_id",
  "memory.total",
  "memory.reserved",
  "clocks.max.graphics",
  "clocks.max.sm",
  "clocks.max.mem",
  "power.limit",
  "enforced.power.limit",
  "temperature.gpu",
  "mig.mode.current",
  "mig.mode.pending",
  "ecc.mode.current",
  "ecc.mode.pending",
  "pcie.link.gen.max",
  "pcie.link.width.max",
  "pcie.link.gen.current",
  "pcie.link.width.current",
  "compute_cap",
  "driver_version",
] as const;

/** The issue's own field list, which run.sh falls back to when a driver refuses one of the extras. */
export const NVIDIA_SMI_BASIC_FIELDS = [
  "name",
  "uuid",
  "pci.bus_id",
  "memory.total",
  "clocks.max.sm",
  "clocks.max.mem",
  "power.limit",
  "enforced.power.limit",
  "temperature.gpu",
  "mig.mode.current",
  "mig.mode.pending",
  "ecc.mode.current",
  "pcie.link.gen.max",
  "pcie.link.width.max",
  "pcie.link.gen.current",
  "pcie.link.width.current",
  "compute_cap",
  "driver_version",
] as const;

type Kind = "text" | "int" | "float" | "state" | "pciBusId" | "pciId";

/** nvidia-smi query names (and their aliases) → our field and how to read the value. */
const SMI_COLUMNS: Readonly<Record<string, { field: GpuField | "index" | "driverVersion"; kind: Kind }>> = {
  index: { field: "index", kind: "int" },
  name: { field: "name", kind: "text" },
  gpu_name: { field: "name", kind: "text" },
  uuid: { field: "uuid", kind: "text" },
  gpu_uuid: { field: "uuid", kind: "text" },
  serial: { field: "serial", kind: "text" },
  gpu_serial: { field: "serial", kind: "text" },
  "pci.bus_id": { field: "pciBusId", kind: "pciBusId" },
  gpu_bus_id: { field: "pciBusId", kind: "pciBusId" },
  "pci.device_id": { field: "pciDeviceId", kind: "pciId" },
  "pci.sub_device_id": { field: "pciSubSystemId", kind: "pciId" },
  "memory.total": { field: "memoryTotalMiB", kind: "int" },
  "memory.reserved": { field: "memoryReservedMiB", kind: "int" },
  "clocks.max.graphics": { field: "maxClockGraphicsMHz", kind: "int" },
  "clocks.max.gr": { field: "maxClockGraphicsMHz", kind: "int" },
  "clocks.max.sm": { field: "maxClockSmMHz", kind: "int" },
  "clocks.max.mem": { field: "maxClockMemoryMHz", kind: "int" },
  "clocks.max.memory": { field: "maxClockMemoryMHz", kind: "int" },
  "power.limit": { field: "powerLimitW", kind: "float" },
  "enforced.power.limit": { field: "enforcedPowerLimitW", kind: "float" },
  "temperature.gpu": { field: "temperatureC", kind: "int" },
  "mig.mode.current": { field: "migModeCurrent", kind: "state" },
  "mig.mode.pending": { field: "migModePending", kind: "state" },
  "ecc.mode.current": { field: "eccModeCurrent", kind: "state" },
  "ecc.mode.pending": { field: "eccModePending", kind: "state" },
  "pcie.link.gen.max": { field: "pcieGenMax", kind: "int" },
  "pcie.link.width.max": { field: "pcieWidthMax", kind: "int" },
  "pcie.link.gen.current": { field: "pcieGenCurrent", kind: "int" },
  "pcie.link.gen.gpucurrent": { field: "pcieGenCurrent", kind: "int" },
  "pcie.link.width.current": { field: "pcieWidthCurrent", kind: "int" },
  compute_cap: { field: "computeCapability", kind: "text" },
  driver_version: { field: "driverVersion", kind: "text" },
};

/** "[N/A]", "N/A", "[Not Supported]", "[Unknown Error]", … : nvidia-smi's ways of saying "no value". */
function smiNoValue(text: string): boolean {
  return text === "" || text === "N/A" || /^\[.*\]$/.test(text);
}

/** Reads one nvidia-smi value of a kind; units ("81559 MiB", "700.00 W") are tolerated. */
export function readSmiValue(raw: string, kind: Kind): Observation {
  const text = raw.trim();
  if (smiNoValue(text)) return { reason: text === "" ? "(empty)" : text };
  switch (kind) {
    case "text":
      return { value: text };
    case "pciBusId":
      return { value: normalizePciBusId(text) };
    case "pciId":
      return { value: normalizePciId(text) };
    case "state":
      if (/^enabled$/i.test(text)) return { value: "Enabled" };
      if (/^disabled$/i.test(text)) return { value: "Disabled" };
      return { reason: text };
    case "int":
    case "float": {
      const m = /^-?\d+(?:\.\d+)?/.exec(text);
      if (m === null) return { reason: text };
      return { value: kind === "int" ? Number.parseInt(m[0], 10) : Number.parseFloat(m[0]) };
    }
  }
}

/**
 * Parses `nvidia-smi --query-gpu=… --format=csv` output with or without a header and units.
 * Without a header the columns are `columns` (default: what run.sh asks for).
 */
export function parseNvidiaSmiCsv(text: string, columns: readonly string[] = NVIDIA_SMI_QUERY_FIELDS): SourceReport {
  const lines = text.split(/\r?\n/).filter((line) => line.trim() !== "");
  if (lines.length === 0) return unavailableSource("nvidia-smi printed no rows");
  let names = [...columns];
  const first = splitCsvLine(lines[0] ?? "");
  const headerNames = first.map((cell) => cell.replace(/\s*\[[^\]]*\]\s*$/, "").trim());
  const isHeader =
    headerNames.every((name) => /^[a-z][a-z0-9_.]*$/.test(name)) && headerNames.some((name) => name in SMI_COLUMNS);
  if (isHeader) {
    names = headerNames;
    lines.shift();
  }
  const host: Observations<HostField> = {};
  const gpus: SourceGpu[] = [];
  for (const line of lines) {
    const cells = splitCsvLine(line);
    if (cells.length !== names.length) {
      throw new Error(`nvidia-smi CSV: ${cells.length} values for ${names.length} columns in: ${line}`);
    }
    const gpu: SourceGpu = { fields: {} };
    names.forEach((name, i) => {
      const column = SMI_COLUMNS[name];
      if (column === undefined) return;
      const obs = readSmiValue(cells[i] ?? "", column.kind);
      if (column.field === "index") {
        if (typeof obs.value === "number") gpu.index = obs.value;
      } else if (column.field === "driverVersion") {
        host.driverVersion ??= obs;
      } else {
        gpu.fields[column.field] = obs;
      }
    });
    gpus.push(gpu);
  }
  host.gpuCount = { value: gpus.length };
  return { host, gpus };
}

/** nvidia-smi quotes nothing; names never contain commas. Split and trim. */
function splitCsvLine(line: string): string[] {
  return line.split(",").map((cell) => cell.trim());
}

// ---- nvidia-smi -q -x ---------------------------------------------------------------------------

/** What the CSV cannot give: architecture, temperature thresholds, max video clock, CUDA version. */
export function parseNvidiaSmiXml(text: string): SourceReport {
  if (!/<nvidia_smi_log[\s>]/.test(text)) return unavailableSource("not an nvidia-smi -q -x document");
  const host: Observations<HostField> = {};
  const head = text.split(/<gpu[\s>]/)[0] ?? "";
  setField(host, "driverVersion", xmlObservation(head, "driver_version", "text"));
  setField(host, "cudaDriverVersion", xmlObservation(head, "cuda_version", "text"));
  const gpus: SourceGpu[] = [];
  const blocks = text.matchAll(/<gpu(?:\s+id="([^"]*)")?\s*>([\s\S]*?)<\/gpu>/g);
  for (const [, id, body = ""] of blocks) {
    const f: Observations<GpuField> = {};
    const busId = id ?? xmlText(body, "pci_bus_id");
    if (busId !== undefined) f.pciBusId = { value: normalizePciBusId(busId) };
    setField(f, "uuid", xmlObservation(body, "uuid", "text"));
    setField(f, "architecture", xmlObservation(body, "product_architecture", "text"));
    setField(f, "maxClockVideoMHz", xmlObservation(section(body, "max_clocks"), "video_clock", "int"));
    const temps = section(body, "temperature");
    setField(f, "shutdownTempC", xmlObservation(temps, "gpu_temp_max_threshold", "int"));
    setField(f, "slowdownTempC", xmlObservation(temps, "gpu_temp_slow_threshold", "int"));
    setField(f, "gpuMaxTempC", xmlObservation(temps, "gpu_temp_max_gpu_threshold", "int"));
    setField(
      f,
      "memoryMaxTempC",
      xmlObservation(temps, "gpu_temp_max_mem_threshold", "int") ??
        xmlObservation(temps, "memory_temp_max_threshold", "int"),
    );
    gpus.push({ fields: f });
  }
  host.gpuCount = { value: gpus.length };
  return { host, gpus };
}

function section(body: string, tag: string): string {
  const m = new RegExp(`<${tag}>([\\s\\S]*?)</${tag}>`).exec(body);
  return m?.[1] ?? "";
}

function xmlText(body: string, tag: string): string | undefined {
  const m = new RegExp(`<${tag}>([^<]*)</${tag}>`).exec(body);
  return m?.[1] === undefined ? undefined : decodeXmlEntities(m[1]).trim();
}

function xmlObservation(body: string, tag: string, kind: Kind): Observation | undefined {
  const text = xmlText(body, tag);
  return text === undefined ? undefined : readSmiValue(text, kind);
}

function decodeXmlEntities(text: string): string {
  return text
    .replaceAll("&lt;", "<")
    .replaceAll("&gt;", ">")
    .replaceAll("&quot;", '"')
    .replaceAll("&apos;", "'")
    .replaceAll("&amp;", "&");
}

/** nvidia-smi's two outputs as one source: CSV values win, the XML fills what the CSV lacks. */
export function mergeNvidiaSmi(csv: SourceReport, xml: SourceReport): SourceReport {
  if (csv.error !== undefined && xml.error !== undefined) {
    return unavailableSource(`csv: ${csv.error}; xml: ${xml.error}`);
  }
  const base = csv.error === undefined ? csv : xml;
  const extra = csv.error === undefined ? xml : csv;
  const host = { ...extra.host, ...withValues(base.host) };
  const gpus = base.gpus.map((gpu) => {
    const busId = gpu.fields.pciBusId?.value;
    const uuid = gpu.fields.uuid?.value;
    const twin = extra.gpus.find(
      (other) =>
        (busId !== undefined && other.fields.pciBusId?.value === busId) ||
        (uuid !== undefined && other.fields.uuid?.value === uuid),
    );
    return { ...gpu, fields: { ...twin?.fields, ...withValues(gpu.fields) } };
  });
  return { host, gpus };
}

/** Drops observations that carry only a reason, so that a real value from elsewhere can show. */
function withValues<F extends string>(obs: Observations<F>): Observations<F> {
  const out: Observations<F> = {};
  for (const [key, o] of Object.entries(obs) as [F, Observation | undefined][]) {
    if (o?.value !== undefined) out[key] = o;
  }
  for (const [key, o] of Object.entries(obs) as [F, Observation | undefined][]) {
    if (o !== undefined && out[key] === undefined) out[key] = o;
  }
  return out;
}

// ---- pynvml_dump.py ------------------------------------------------------------------------------

/** pynvml_dump.py writes an NVML failure as {"error": "NOT_SUPPORTED", "code": 3} in place of the value. */
function pyObservation(v: unknown, read: (x: unknown) => Scalar | undefined): Observation | undefined {
  if (v === undefined || v === null) return undefined;
  if (isObject(v) && typeof v.error === "string") return { reason: v.error };
  const scalar = read(v);
  return scalar === undefined ? { reason: `unexpected value ${JSON.stringify(v)}` } : { value: scalar };
}

const asNumber = (x: unknown) => (typeof x === "number" && Number.isFinite(x) ? x : undefined);
const asText = (x: unknown) => (typeof x === "string" ? x.trim() : undefined);
const asState = (x: unknown) => (x === 0 || x === 1 ? enabledState(x === 1) : undefined);
const asBytesMiB = (x: unknown) => (typeof x === "number" ? Math.floor(x / 2 ** 20) : undefined);
const asWatts = (x: unknown) => (typeof x === "number" ? x / 1000 : undefined);

function member(obj: unknown, key: string): unknown {
  if (!isObject(obj)) return undefined;
  return obj[key];
}

/** The failure of a whole group ({"error": …} where an object of values was expected) applies to each member. */
function pyMember(obj: unknown, key: string): unknown {
  if (isObject(obj) && typeof obj.error === "string") return obj;
  return member(obj, key);
}

export function parsePynvmlDump(text: string): SourceReport {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    return unavailableSource(`pynvml dump is not JSON: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (!isObject(data)) return unavailableSource("pynvml dump: expected an object");
  if (typeof data.fatal === "string") return unavailableSource(`pynvml: ${data.fatal}`);
  const host: Observations<HostField> = {};
  setField(host, "driverVersion", pyObservation(data.driverVersion, asText));
  setField(host, "nvmlVersion", pyObservation(data.nvmlVersion, asText));
  setField(
    host,
    "cudaDriverVersion",
    pyObservation(data.cudaDriverVersion, (x) => (typeof x === "number" ? cudaVersionText(x) : undefined)),
  );
  setField(host, "gpuCount", pyObservation(data.deviceCount, asNumber));
  const gpus = Array.isArray(data.gpus) ? data.gpus.map(pynvmlGpu) : [];
  return { host, gpus };
}

function pynvmlGpu(gpu: unknown): SourceGpu {
  const f: Observations<GpuField> = {};
  const get = (key: string) => member(gpu, key);
  setField(f, "name", pyObservation(get("name"), asText));
  setField(f, "uuid", pyObservation(get("uuid"), asText));
  setField(
    f,
    "pciBusId",
    pyObservation(pyMember(get("pci"), "busId"), (x) => (typeof x === "string" ? normalizePciBusId(x) : undefined)),
  );
  const pciId = (x: unknown) => (typeof x === "number" || typeof x === "string" ? normalizePciId(x) : undefined);
  setField(f, "pciDeviceId", pyObservation(pyMember(get("pci"), "pciDeviceId"), pciId));
  setField(f, "pciSubSystemId", pyObservation(pyMember(get("pci"), "pciSubSystemId"), pciId));
  setField(f, "serial", pyObservation(get("serial"), asText));
  setField(f, "minorNumber", pyObservation(get("minorNumber"), asNumber));
  setField(
    f,
    "architecture",
    pyObservation(get("architecture"), (x) =>
      typeof x === "number" ? (NVML_ARCHITECTURES[x] ?? `unknown(${x})`) : undefined,
    ),
  );
  setField(
    f,
    "computeCapability",
    pyObservation(get("cudaComputeCapability"), (x) =>
      Array.isArray(x) && typeof x[0] === "number" && typeof x[1] === "number" ? `${x[0]}.${x[1]}` : undefined,
    ),
  );
  setField(f, "memoryTotalMiB", pyObservation(pyMember(get("memory"), "total"), asBytesMiB));
  setField(f, "memoryReservedMiB", pyObservation(pyMember(get("memoryV2"), "reserved"), asBytesMiB));
  const clocks = get("maxClocksMHz");
  setField(f, "maxClockGraphicsMHz", pyObservation(pyMember(clocks, "graphics"), asNumber));
  setField(f, "maxClockSmMHz", pyObservation(pyMember(clocks, "sm"), asNumber));
  setField(f, "maxClockMemoryMHz", pyObservation(pyMember(clocks, "memory"), asNumber));
  setField(f, "maxClockVideoMHz", pyObservation(pyMember(clocks, "video"), asNumber));
  setField(f, "powerLimitW", pyObservation(get("powerLimitMilliwatts"), asWatts));
  setField(f, "enforcedPowerLimitW", pyObservation(get("enforcedPowerLimitMilliwatts"), asWatts));
  setField(f, "temperatureC", pyObservation(get("temperatureC"), asNumber));
  const thresholds = get("temperatureThresholdsC");
  setField(f, "shutdownTempC", pyObservation(pyMember(thresholds, "shutdown"), asNumber));
  setField(f, "slowdownTempC", pyObservation(pyMember(thresholds, "slowdown"), asNumber));
  setField(f, "gpuMaxTempC", pyObservation(pyMember(thresholds, "gpuMax"), asNumber));
  setField(f, "memoryMaxTempC", pyObservation(pyMember(thresholds, "memoryMax"), asNumber));
  setField(f, "migModeCurrent", pyObservation(pyMember(get("migMode"), "current"), asState));
  setField(f, "migModePending", pyObservation(pyMember(get("migMode"), "pending"), asState));
  const migDevices = get("migDevices");
  setField(
    f,
    "migDeviceCount",
    pyObservation(migDevices, (x) => (Array.isArray(x) ? x.length : undefined)),
  );
  setField(f, "eccModeCurrent", pyObservation(pyMember(get("eccMode"), "current"), asState));
  setField(f, "eccModePending", pyObservation(pyMember(get("eccMode"), "pending"), asState));
  const pcie = get("pcie");
  setField(f, "pcieGenMax", pyObservation(pyMember(pcie, "maxGeneration"), asNumber));
  setField(f, "pcieWidthMax", pyObservation(pyMember(pcie, "maxWidth"), asNumber));
  setField(f, "pcieGenCurrent", pyObservation(pyMember(pcie, "currentGeneration"), asNumber));
  setField(f, "pcieWidthCurrent", pyObservation(pyMember(pcie, "currentWidth"), asNumber));
  const index = get("index");
  return typeof index === "number" ? { index, fields: f } : { fields: f };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}
