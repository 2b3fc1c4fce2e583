// MIG layout specs. `version: v1` is mig-parted's format exactly (its fields,
// its validation rules, its YAML 1.1 reading), so operators reuse their files
// unchanged. `version: tessera/v1` is the same shape plus: placements pinned
// with `@start` on profile keys (`3g.40gb@4: 1`, `1c.3g.40gb@0: 3`), GPUs
// selected by UUID in `devices`, and by model name in `device-model`.
// Errors name file, line and column, what is wrong and what would be valid.

import { type Document, isMap, isNode, isScalar, isSeq, LineCounter, parseDocument } from "yaml";
import { z } from "zod";
import { InputError } from "../errors.js";
import {
  formatProfileName,
  type ProfileName,
  parsePinnedProfileName,
  parseProfileName,
  sameGpuInstanceProfile,
} from "./profile-name.js";

export type SpecVersion = "v1" | "tessera/v1";
export const SPEC_VERSIONS: readonly SpecVersion[] = ["v1", "tessera/v1"];

export interface SourcePosition {
  readonly file: string;
  readonly line: number;
  readonly column: number;
}

/** `0x<device><vendor>[:0x<subdevice><subvendor>]`, packed as NVML's `pciDeviceId` / `pciSubSystemId`. */
export interface PciIdFilter {
  readonly text: string;
  readonly pciDeviceId: number;
  readonly pciSubsystemId: number | null;
}

export type DeviceSelector =
  | { readonly kind: "index"; readonly index: number }
  | { readonly kind: "uuid"; readonly uuid: string };

/** One `mig-devices` line: `"1c.3g.40gb@0": 3`. */
export interface MigDeviceRequest {
  readonly key: string;
  readonly profile: ProfileName;
  /** Pinned placement start (tessera/v1 only), or null. */
  readonly start: number | null;
  readonly count: number;
  readonly at: SourcePosition;
}

export interface MigConfigEntry {
  readonly at: SourcePosition;
  /** Empty: every GPU model. */
  readonly deviceFilter: readonly PciIdFilter[];
  readonly devices: "all" | readonly DeviceSelector[];
  /** Empty: every model name (tessera/v1 `device-model`). */
  readonly deviceModels: readonly string[];
  readonly migEnabled: boolean;
  /** In file order; counts of 0 are kept (they mean "none"). */
  readonly migDevices: readonly MigDeviceRequest[];
}

export interface MigConfig {
  readonly name: string;
  readonly at: SourcePosition;
  readonly entries: readonly MigConfigEntry[];
}

export interface MigSpec {
  readonly file: string;
  readonly version: SpecVersion;
  readonly configs: readonly MigConfig[];
}

type Path = readonly PropertyKey[];

class Locator {
  constructor(
    readonly file: string,
    readonly doc: Document.Parsed,
    private readonly lines: LineCounter,
  ) {}

  /** Position of the key (or value) at `path`; the nearest existing ancestor when the path is missing. */
  at(path: Path, part: "key" | "value" = "value"): SourcePosition {
    let node: unknown = this.doc.contents;
    let offset = isNode(node) ? (node.range?.[0] ?? 0) : 0;
    for (let i = 0; i < path.length; i++) {
      const seg = String(path[i]);
      const last = i === path.length - 1;
      if (isMap(node)) {
        const pair = node.items.find((p) => (isScalar(p.key) ? String(p.key.value) : String(p.key)) === seg);
        if (!pair) break;
        const keyOffset = isNode(pair.key) ? (pair.key.range?.[0] ?? offset) : offset;
        if ((last && part === "key") || !isNode(pair.value)) {
          offset = keyOffset;
          break;
        }
        node = pair.value;
        offset = pair.value.range?.[0] ?? keyOffset;
      } else if (isSeq(node)) {
        const item = node.items[Number(seg)];
        if (!isNode(item)) break;
        node = item;
        offset = item.range?.[0] ?? offset;
      } else {
        break;
      }
    }
    const { line, col } = this.lines.linePos(offset);
    return { file: this.file, line, column: col };
  }

  error(path: Path, message: string, part: "key" | "value" = "value"): InputError {
    return inputError(message, this.at(path, part));
  }
}

function inputError(message: string, at: SourcePosition): InputError {
  return new InputError(message, { file: at.file, line: at.line, column: at.column });
}

function parseYaml(text: string, file: string, version: "1.1" | "1.2"): Locator {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true, version });
  const first = doc.errors[0];
  if (first) {
    const { line, col } = lines.linePos(first.pos[0]);
    throw new InputError(`invalid YAML: ${first.message}`, { file, line, column: col });
  }
  return new Locator(file, doc, lines);
}

// ---- structure (zod) ----

const TOP_FIELDS = ["version", "mig-configs"];
const ENTRY_FIELDS: Record<SpecVersion, string[]> = {
  v1: ["device-filter", "devices", "mig-enabled", "mig-devices"],
  "tessera/v1": ["device-filter", "device-model", "devices", "mig-enabled", "mig-devices"],
};

function missingOr(field: string, hint: string, wrong: string) {
  return (issue: { input?: unknown }) =>
    issue.input === undefined ? `missing required field '${field}' (${hint})` : wrong;
}

function schemaFor(version: SpecVersion) {
  const tessera = version === "tessera/v1";
  const devicesHint = tessera
    ? "'all' or a list of GPU indexes and UUIDs, e.g. [0, 1] or [\"GPU-8f3c…\"]"
    : "'all' or a list of GPU indexes, e.g. [0, 1]";
  const deviceItem = tessera ? z.union([z.int(), z.string()]) : z.int();
  const devices = z.union([z.literal("all"), z.array(deviceItem)], {
    error: missingOr(
      "devices",
      devicesHint,
      `devices must be ${devicesHint}; a bare index is not accepted: write [7], not 7`,
    ),
  });
  const stringOrList = (field: string, example: string) =>
    z.union([z.string(), z.array(z.string())], {
      error: `${field} must be a string or a list of strings, e.g. ${example} (quote hex ids: YAML reads 0x… as a number)`,
    });
  const migDevices = z
    .record(
      z.string(),
      z.int({ error: "a count must be a whole number ≥ 0" }).min(0, { error: "a count must be a whole number ≥ 0" }),
      { error: 'mig-devices must map profile names to counts, e.g. {"1g.10gb": 7}, or be {} for none' },
    )
    .nullable();
  const entry = z.strictObject({
    "device-filter": stringOrList("device-filter", '"0x233010DE" or ["0x233010DE", "0x20B010DE"]').optional(),
    ...(tessera ? { "device-model": stringOrList("device-model", '"NVIDIA H100 80GB HBM3"').optional() } : {}),
    devices,
    "mig-enabled": z.boolean({ error: missingOr("mig-enabled", "true or false", "mig-enabled must be true or false") }),
    "mig-devices": migDevices.optional(),
  });
  return z.strictObject({
    version: z.string(),
    "mig-configs": z
      .record(
        z.string(),
        z.array(entry, { error: "a mig-config must be a list of entries, each with devices and mig-enabled" }),
        { error: "mig-configs must map config names to lists of entries" },
      )
      .nullable()
      .optional(),
  });
}

type RawSpec = z.infer<ReturnType<typeof schemaFor>>;

function structureError(loc: Locator, version: SpecVersion, issues: readonly z.core.$ZodIssue[]): InputError {
  const errors = issues.map((issue) => {
    if (issue.code === "unrecognized_keys") {
      const key = issue.keys[0] ?? "";
      const allowed = issue.path.length === 0 ? TOP_FIELDS : ENTRY_FIELDS[version];
      const hint =
        version === "v1" && (key === "device-model" || key === "placements")
          ? " (device-model needs 'version: tessera/v1')"
          : "";
      return loc.error(
        [...issue.path, key],
        `unexpected field '${key}'${hint}; valid fields here: ${allowed.join(", ")}`,
        "key",
      );
    }
    const field = issue.path.length > 0 ? String(issue.path[issue.path.length - 1]) : "";
    const inMigDevices = issue.path.length === 5 && issue.path[3] === "mig-devices";
    const message = inMigDevices ? `count for '${field}': ${issue.message}` : issue.message;
    return loc.error(issue.path, message);
  });
  errors.sort((a, b) => (a.line ?? 0) - (b.line ?? 0) || (a.column ?? 0) - (b.column ?? 0));
  return errors[0] ?? new InputError("invalid MIG spec", { file: loc.file });
}

// ---- rules (mig-parted's, then Tessera's) ----

const PCI_ID = /^(0x[0-9a-f]{1,8}|[0-9]{1,10})$/i;

function parsePciId(text: string): number | null {
  if (!PCI_ID.test(text)) return null;
  const value = Number(
    text.toLowerCase().startsWith("0x") ? Number.parseInt(text.slice(2), 16) : Number.parseInt(text, 10),
  );
  return value <= 0xffffffff ? value : null;
}

function parseFilter(text: string): PciIdFilter | null {
  const parts = text.split(":");
  if (parts.length > 2) return null;
  const device = parsePciId(parts[0] ?? "");
  if (device === null) return null;
  if (parts.length === 1) return { text, pciDeviceId: device, pciSubsystemId: null };
  const subsystem = parsePciId(parts[1] ?? "");
  return subsystem === null ? null : { text, pciDeviceId: device, pciSubsystemId: subsystem };
}

const GPU_UUID = /^GPU-[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}$/;

function toList(value: string | readonly string[] | undefined): readonly string[] {
  if (value === undefined) return [];
  return typeof value === "string" ? (value === "" ? [] : [value]) : value;
}

type RawEntry = NonNullable<NonNullable<RawSpec["mig-configs"]>[string]>[number];

function buildEntry(loc: Locator, version: SpecVersion, path: Path, raw: RawEntry): MigConfigEntry {
  const at = loc.at(path);
  const tessera = version === "tessera/v1";

  const filterTexts = toList(raw["device-filter"]);
  const deviceFilter = filterTexts.map((text, i) => {
    const parsed = parseFilter(text);
    if (!parsed) {
      const where =
        typeof raw["device-filter"] === "string" ? [...path, "device-filter"] : [...path, "device-filter", i];
      throw loc.error(
        where,
        `invalid device-filter '${text}': expected a PCI device and vendor id like "0x233010DE", optionally with a subsystem id: "0x233010DE:0x16C110DE"`,
      );
    }
    return parsed;
  });

  let devices: "all" | DeviceSelector[] = "all";
  if (raw.devices !== "all") {
    devices = raw.devices.map((d, i): DeviceSelector => {
      if (typeof d === "number") {
        if (d < 0) throw loc.error([...path, "devices", i], `GPU index ${d} is negative; indexes start at 0`);
        return { kind: "index", index: d };
      }
      if (!GPU_UUID.test(d)) {
        throw loc.error(
          [...path, "devices", i],
          `'${d}' is neither a GPU index nor a GPU UUID (GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)`,
        );
      }
      return { kind: "uuid", uuid: d };
    });
  }

  const rawModels = tessera ? (raw as { "device-model"?: string | string[] })["device-model"] : undefined;
  const deviceModels = toList(rawModels);

  const migEnabled = raw["mig-enabled"];
  const rawDevices = raw["mig-devices"];
  if (migEnabled && (rawDevices === undefined || rawDevices === null)) {
    throw loc.error(
      path,
      "missing required field 'mig-devices' when 'mig-enabled' is true (use 'mig-devices: {}' for MIG mode with no instances)",
    );
  }
  const pairs = Object.entries(rawDevices ?? {});
  if (!migEnabled && pairs.length > 0) {
    throw loc.error(
      [...path, "mig-devices"],
      "mig-devices listed while 'mig-enabled' is false: remove them or set 'mig-enabled: true'",
    );
  }
  if (pairs.length > 0 && pairs.every(([, n]) => n === 0)) {
    throw loc.error(
      [...path, "mig-devices"],
      "all counts in mig-devices are 0: use 'mig-devices: {}' for no instances, or give a profile a count above 0",
    );
  }

  const migDevices = pairs.map(([key, count]): MigDeviceRequest => {
    const keyPath = [...path, "mig-devices", key];
    const parsed = tessera ? parsePinnedProfileName(key) : parseProfileName(key);
    if (!parsed.ok) {
      const hint = !tessera && key.includes("@") ? " (placements like '3g.40gb@4' need 'version: tessera/v1')" : "";
      throw loc.error(keyPath, `${parsed.error}${hint}`, "key");
    }
    const value = parsed.value;
    const profile = "profile" in value ? value.profile : value;
    const start = "profile" in value ? value.start : null;
    return { key, profile, start, count, at: loc.at(keyPath, "key") };
  });
  checkPinned(migDevices);
  return { at, deviceFilter, devices, deviceModels, migEnabled, migDevices };
}

/** Keys pinned to one start describe one GPU instance: same GI profile, one full CI or CIs that fit. */
function checkPinned(requests: readonly MigDeviceRequest[]): void {
  const byStart = new Map<number, MigDeviceRequest[]>();
  for (const r of requests) {
    if (r.start === null || r.count === 0) continue;
    byStart.set(r.start, [...(byStart.get(r.start) ?? []), r]);
  }
  for (const [start, group] of byStart) {
    const first = group[0];
    if (!first) continue;
    const giName = formatProfileName({ ...first.profile, computeSlices: first.profile.gpuSlices });
    for (const r of group) {
      if (!sameGpuInstanceProfile(r.profile, first.profile)) {
        throw inputError(
          `'${r.key}' and '${first.key}' pin different GPU instances to memory slice ${start}; one placement holds one GPU instance`,
          r.at,
        );
      }
      if (r.profile.computeSlices === r.profile.gpuSlices && r.count !== 1) {
        throw inputError(
          `'${r.key}' pins one GPU instance, so its count must be 1 (not ${r.count}); pin further instances at other starts`,
          r.at,
        );
      }
    }
    const slices = group.reduce((n, r) => n + r.profile.computeSlices * r.count, 0);
    if (slices > first.profile.gpuSlices) {
      const list = group.map((r) => `${r.key}: ${r.count}`).join(", ");
      throw inputError(
        `compute instances pinned at @${start} (${list}) need ${slices} compute slices, but ${giName} has ${first.profile.gpuSlices}`,
        first.at,
      );
    }
  }
}

/** Parses and validates a spec file's text. Throws `InputError` naming file, line and column. */
export function parseMigSpec(text: string, file: string): MigSpec {
  // Read once to learn the version, then as the version's reader does: mig-parted reads
  // YAML 1.1 (go-yaml v2), where `yes`/`on` are booleans.
  const probe = parseYaml(text, file, "1.2");
  const top: unknown = probe.doc.toJS();
  if (top === null || top === undefined) {
    throw new InputError(
      "empty MIG spec: expected 'version: v1' (mig-parted) or 'version: tessera/v1', and 'mig-configs'",
      {
        file,
        line: 1,
        column: 1,
      },
    );
  }
  if (typeof top !== "object" || Array.isArray(top)) {
    throw probe.error([], "a MIG spec is a mapping with 'version' and 'mig-configs'");
  }
  if (!("version" in top)) {
    throw probe.error([], "missing 'version' field: expected 'version: v1' (mig-parted) or 'version: tessera/v1'");
  }
  const version = (top as { version: unknown }).version;
  if (typeof version !== "string" || !(SPEC_VERSIONS as readonly string[]).includes(version)) {
    throw probe.error(["version"], `unknown version '${String(version)}': expected ${SPEC_VERSIONS.join(" or ")}`);
  }
  const specVersion = version as SpecVersion;
  const loc = specVersion === "v1" ? parseYaml(text, file, "1.1") : probe;
  const parsed = schemaFor(specVersion).safeParse(loc.doc.toJS());
  if (!parsed.success) throw structureError(loc, specVersion, parsed.error.issues);

  const rawConfigs = parsed.data["mig-configs"];
  if (rawConfigs === null || (rawConfigs !== undefined && Object.keys(rawConfigs).length === 0)) {
    throw loc.error(["mig-configs"], "at least one entry in 'mig-configs' is required", "key");
  }
  const configs = Object.entries(rawConfigs ?? {}).map(([name, entries]): MigConfig => {
    if (entries.length === 0) {
      throw loc.error(["mig-configs", name], `at least one entry in '${name}' is required`, "key");
    }
    return {
      name,
      at: loc.at(["mig-configs", name], "key"),
      entries: entries.map((raw, i) => buildEntry(loc, specVersion, ["mig-configs", name, i], raw)),
    };
  });
  return { file, version: specVersion, configs };
}
