// Compares Tessera's inventory with nvidia-smi and pynvml, field by field, GPU by GPU. Pure functions.
import {
  GPU_FIELDS,
  type GpuField,
  HOST_FIELDS,
  type HostField,
  type Observation,
  type Observations,
  type Scalar,
  type SourceGpu,
  type SourceReport,
} from "./sources.js";

export type Verdict = "match" | "mismatch" | "absent";

export interface CompareRow {
  /** "host", or the GPU's index (Tessera's, else the first source's that has one). */
  gpu: string;
  field: string;
  tessera: Scalar | null;
  nvidiaSmi: Scalar | null;
  pynvml: Scalar | null;
  verdict: Verdict;
  /** Why a value is missing, which tolerance applied, … */
  note?: string;
}

interface FieldSpec {
  /** Largest difference still counted as equal (numbers only). */
  tolerance?: number;
  /** Compare strings ignoring case. */
  caseInsensitive?: boolean;
  /** false where HostInventory has no such field: Tessera's column is then not expected. */
  inTessera?: boolean;
  /** Said in the row when the values differ, e.g. that the value moves between reads. */
  hint?: string;
}

export const FIELD_SPECS: Readonly<Record<GpuField | HostField, FieldSpec>> = {
  name: {},
  uuid: { caseInsensitive: true },
  pciBusId: {},
  pciDeviceId: {},
  pciSubSystemId: {},
  serial: {},
  minorNumber: {},
  architecture: { caseInsensitive: true },
  computeCapability: {},
  memoryTotalMiB: {},
  memoryReservedMiB: {},
  maxClockGraphicsMHz: {},
  maxClockSmMHz: {},
  maxClockMemoryMHz: {},
  maxClockVideoMHz: {},
  powerLimitW: { tolerance: 0.5 },
  enforcedPowerLimitW: { tolerance: 0.5, inTessera: false },
  temperatureC: { tolerance: 3, hint: "read at different moments" },
  shutdownTempC: {},
  slowdownTempC: {},
  gpuMaxTempC: {},
  memoryMaxTempC: {},
  migModeCurrent: {},
  migModePending: {},
  migDeviceCount: {},
  eccModeCurrent: {},
  eccModePending: {},
  pcieGenMax: {},
  pcieWidthMax: {},
  pcieGenCurrent: { hint: "the link trains down when idle; read at different moments" },
  pcieWidthCurrent: { hint: "the link trains down when idle; read at different moments" },
  gpuCount: {},
  driverVersion: {},
  nvmlVersion: {},
  cudaDriverVersion: {},
};

export interface Sources {
  tessera: SourceReport;
  nvidiaSmi: SourceReport;
  pynvml: SourceReport;
}

const SOURCE_NAMES = ["tessera", "nvidiaSmi", "pynvml"] as const;
type SourceName = (typeof SOURCE_NAMES)[number];
const SOURCE_LABELS: Record<SourceName, string> = { tessera: "tessera", nvidiaSmi: "nvidia-smi", pynvml: "pynvml" };

/** True when two values count as the same under the field's rules. */
export function sameValue(spec: FieldSpec, a: Scalar, b: Scalar): boolean {
  if (typeof a === "number" && typeof b === "number") return Math.abs(a - b) <= (spec.tolerance ?? 0) + 1e-9;
  if (typeof a === "string" && typeof b === "string") {
    return spec.caseInsensitive === true ? a.trim().toLowerCase() === b.trim().toLowerCase() : a.trim() === b.trim();
  }
  return a === b;
}

/** The verdict for one field given what each source observed. */
export function judge(
  spec: FieldSpec,
  obs: Record<SourceName, Observation | undefined>,
): { verdict: Verdict; note?: string } {
  const present = SOURCE_NAMES.filter((s) => obs[s]?.value !== undefined);
  const reasons = SOURCE_NAMES.filter((s) => obs[s]?.value === undefined && obs[s]?.reason !== undefined).map(
    (s) => `${SOURCE_LABELS[s]}: ${obs[s]?.reason}`,
  );
  const notes: string[] = [];
  for (let i = 0; i < present.length; i++) {
    for (let j = i + 1; j < present.length; j++) {
      const a = present[i] as SourceName;
      const b = present[j] as SourceName;
      if (!sameValue(spec, obs[a]?.value as Scalar, obs[b]?.value as Scalar)) {
        notes.push(`${SOURCE_LABELS[a]} ≠ ${SOURCE_LABELS[b]}`);
      }
    }
  }
  if (notes.length > 0) {
    if (spec.hint !== undefined) notes.push(spec.hint);
    if (spec.tolerance !== undefined) notes.push(`tolerance ±${spec.tolerance}`);
    return { verdict: "mismatch", note: [...notes, ...reasons].join("; ") };
  }
  const inTessera = spec.inTessera !== false;
  if (inTessera && obs.tessera?.value === undefined && present.length > 0) {
    const why = obs.tessera?.reason ?? "tessera reports nothing";
    return { verdict: "absent", note: [why, ...reasons.filter((r) => !r.startsWith("tessera"))].join("; ") };
  }
  if (present.length >= 2) {
    const note = [spec.tolerance !== undefined ? `tolerance ±${spec.tolerance}` : "", ...reasons]
      .filter((s) => s !== "")
      .join("; ");
    return note === "" ? { verdict: "match" } : { verdict: "match", note };
  }
  const notes2 = [present.length === 0 ? "no source reports it" : "only one source reports it", ...reasons];
  if (!inTessera) notes2.push("not in HostInventory");
  return { verdict: "absent", note: notes2.join("; ") };
}

interface GpuGroup {
  label: string;
  members: Partial<Record<SourceName, SourceGpu>>;
}

/**
 * Lines up the GPUs of the three sources: by UUID, else PCI bus id, else index. Tessera's order
 * comes first; GPUs only the references see are appended.
 */
export function groupGpus(sources: Sources): GpuGroup[] {
  const groups: GpuGroup[] = [];
  const key = (gpu: SourceGpu, field: "uuid" | "pciBusId") => {
    const v = gpu.fields[field]?.value;
    return typeof v === "string" ? v.toLowerCase() : undefined;
  };
  for (const name of SOURCE_NAMES) {
    sources[name].gpus.forEach((gpu, position) => {
      const uuid = key(gpu, "uuid");
      const bus = key(gpu, "pciBusId");
      const index = gpu.index ?? position;
      const found = groups.find((g) => {
        if (g.members[name] !== undefined) return false;
        const others = Object.values(g.members);
        if (uuid !== undefined && others.some((o) => key(o, "uuid") === uuid)) return true;
        if (bus !== undefined && others.some((o) => key(o, "pciBusId") === bus)) return true;
        const identified = uuid !== undefined || bus !== undefined;
        return !identified && others.some((o) => o.index === index && key(o, "uuid") === undefined);
      });
      if (found !== undefined) found.members[name] = gpu;
      else groups.push({ label: String(index), members: { [name]: gpu } });
    });
  }
  return groups;
}

function sourceObservation<F extends string>(
  report: SourceReport,
  obs: Observations<F> | undefined,
  field: F,
): Observation | undefined {
  if (report.error !== undefined) return { reason: "unavailable" };
  return obs?.[field];
}

function row(
  gpu: string,
  field: string,
  spec: FieldSpec,
  obs: Record<SourceName, Observation | undefined>,
): CompareRow {
  const { verdict, note } = judge(spec, obs);
  const out: CompareRow = {
    gpu,
    field,
    tessera: obs.tessera?.value ?? null,
    nvidiaSmi: obs.nvidiaSmi?.value ?? null,
    pynvml: obs.pynvml?.value ?? null,
    verdict,
  };
  if (note !== undefined) out.note = note;
  return out;
}

/** Every row of the comparison: host fields first, then each GPU's fields in GPU_FIELDS order. */
export interface InventoryFindings {
  /** HostInventory.simulated: must be false on a real GPU. */
  simulated?: boolean;
  /** From inventorySchemaProblems(). */
  schemaProblems?: string[];
  /** HostInventory.unavailableGpus: NVML's error by GPU index. */
  gpuErrors?: Readonly<Record<string, string>>;
}

export function compareSources(sources: Sources, extra: InventoryFindings = {}): CompareRow[] {
  const rows: CompareRow[] = [];
  if (extra.simulated !== undefined) {
    rows.push({
      gpu: "host",
      field: "simulated",
      tessera: extra.simulated,
      nvidiaSmi: null,
      pynvml: null,
      verdict: extra.simulated ? "mismatch" : "match",
      note: extra.simulated ? "tessera loaded its simulator, not the real driver" : "tessera loaded the real driver",
    });
  }
  if (extra.schemaProblems !== undefined && extra.schemaProblems.length > 0) {
    rows.push({
      gpu: "host",
      field: "inventorySchema",
      tessera: extra.schemaProblems.join("; "),
      nvidiaSmi: null,
      pynvml: null,
      verdict: "mismatch",
      note: "inventory.json does not follow HostInventory",
    });
  }
  for (const [gpu, error] of Object.entries(extra.gpuErrors ?? {})) {
    rows.push({
      gpu,
      field: "error",
      tessera: error,
      nvidiaSmi: null,
      pynvml: null,
      verdict: "mismatch",
      note: "tessera could not open this GPU",
    });
  }
  for (const field of HOST_FIELDS) {
    const obs = {
      tessera: sourceObservation(sources.tessera, sources.tessera.host, field),
      nvidiaSmi: sourceObservation(sources.nvidiaSmi, sources.nvidiaSmi.host, field),
      pynvml: sourceObservation(sources.pynvml, sources.pynvml.host, field),
    };
    rows.push(row("host", field, FIELD_SPECS[field], obs));
  }
  for (const group of groupGpus(sources)) {
    for (const field of GPU_FIELDS) {
      const obs = {} as Record<SourceName, Observation | undefined>;
      for (const name of SOURCE_NAMES) {
        const member = group.members[name];
        obs[name] =
          member === undefined && sources[name].error === undefined
            ? { reason: "GPU not listed" }
            : sourceObservation(sources[name], member?.fields, field);
      }
      rows.push(row(group.label, field, FIELD_SPECS[field], obs));
    }
  }
  return rows;
}

export function countVerdicts(rows: readonly CompareRow[]): Record<Verdict, number> {
  const counts: Record<Verdict, number> = { match: 0, mismatch: 0, absent: 0 };
  for (const r of rows) counts[r.verdict]++;
  return counts;
}
