// MIG profile names as NVIDIA's tools print them, and the strings operators
// write in specs. Grammar and formula follow go-nvlib `mig_profile.go` (the
// code mig-parted and the Kubernetes device plugin share), so a name derived
// here matches theirs on every GPU model: reference/nvml.md §4.4.

import { GpuInstanceProfileIndex } from "./types.js";

export interface ProfileName {
  /** `c`: compute slices of the compute instance (equals `gpuSlices` for a full-size CI). */
  readonly computeSlices: number;
  /** `g`: compute slices of the GPU instance. */
  readonly gpuSlices: number;
  readonly memoryGB: number;
  /** After `+`, e.g. `me`, `me.all`, `gfx`; in the order written. */
  readonly attributes: readonly string[];
  /** After `-`, e.g. `me` in `1g.24gb-me`. */
  readonly negativeAttributes: readonly string[];
}

/** A profile string with Tessera's optional `@start` placement suffix. */
export interface PinnedProfileName {
  readonly profile: ProfileName;
  readonly start: number | null;
}

export type ParseResult<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: string };

const ATTRIBUTE_CHARS = /^[A-Za-z0-9.]+$/;

function parseField(text: string, suffix: "c" | "g" | "gb"): ParseResult<number> {
  const m = new RegExp(`^(\\d+)${suffix}$`).exec(text);
  if (!m?.[1]) return { ok: false, error: `expected '<number>${suffix}' but found '${text}'` };
  const value = Number.parseInt(m[1], 10);
  if (value < 1) return { ok: false, error: `'${text}' must be at least 1${suffix}` };
  return { ok: true, value };
}

function parseAttributes(text: string): ParseResult<string[]> {
  const attributes = text.split(",");
  const seen = new Set<string>();
  for (const a of attributes) {
    if (a === "") return { ok: false, error: "empty attribute in list" };
    if (seen.has(a)) return { ok: false, error: `attribute '${a}' repeated` };
    if (a.trim() !== a) return { ok: false, error: "leading or trailing spaces in attribute" };
    if (/^[0-9]/.test(a)) return { ok: false, error: `attribute '${a}' begins with a number` };
    if (a.startsWith(".") || a.endsWith(".")) return { ok: false, error: `attribute '${a}' begins or ends with a dot` };
    if (!ATTRIBUTE_CHARS.test(a))
      return { ok: false, error: `attribute '${a}' has characters other than letters, digits and dots` };
    seen.add(a);
  }
  return { ok: true, value: attributes };
}

const GRAMMAR = "expected [<c>c.]<g>g.<gb>gb[+attr,…|-attr], e.g. 1g.10gb, 1g.10gb+me, 1c.3g.40gb";

/** Parses `[<c>c.]<g>g.<gb>gb[+attr,…|-attr]` with go-nvlib's rules. */
export function parseProfileName(text: string): ParseResult<ProfileName> {
  const fail = (why: string): ParseResult<ProfileName> => ({
    ok: false,
    error: `invalid MIG profile '${text}': ${why}; ${GRAMMAR}`,
  });
  if (text === "") return fail("empty string");
  const plus = text.indexOf("+");
  const minus = text.indexOf("-");
  if (plus >= 0 && minus >= 0) return fail("has both '+' and '-' attributes");
  const cut = plus >= 0 ? plus : minus;
  const base = cut >= 0 ? text.slice(0, cut) : text;
  const fields = base.split(".");
  if (fields.length !== 2 && fields.length !== 3)
    return fail(`expected 2 or 3 '.'-separated fields, found ${fields.length}`);
  const parts = fields.length === 3 ? fields : [undefined, ...fields];
  const [cText, gText, gbText] = parts;
  const g = parseField(gText ?? "", "g");
  if (!g.ok) return fail(g.error);
  const gb = parseField(gbText ?? "", "gb");
  if (!gb.ok) return fail(gb.error);
  let c = g.value;
  if (cText !== undefined) {
    const parsed = parseField(cText, "c");
    if (!parsed.ok) return fail(parsed.error);
    c = parsed.value;
    if (c > g.value) return fail(`a compute instance (${c}c) cannot be larger than its GPU instance (${g.value}g)`);
  }
  let attributes: string[] = [];
  let negativeAttributes: string[] = [];
  if (cut >= 0) {
    const parsed = parseAttributes(text.slice(cut + 1));
    if (!parsed.ok) return fail(parsed.error);
    if (plus >= 0) attributes = parsed.value;
    else negativeAttributes = parsed.value;
  }
  return {
    ok: true,
    value: { computeSlices: c, gpuSlices: g.value, memoryGB: gb.value, attributes, negativeAttributes },
  };
}

/** Parses a profile string that may end in Tessera's `@<start>` (memory slice of the placement). */
export function parsePinnedProfileName(text: string): ParseResult<PinnedProfileName> {
  const at = text.lastIndexOf("@");
  if (at < 0) {
    const parsed = parseProfileName(text);
    return parsed.ok ? { ok: true, value: { profile: parsed.value, start: null } } : parsed;
  }
  const startText = text.slice(at + 1);
  if (!/^\d+$/.test(startText)) {
    return {
      ok: false,
      error: `invalid placement '@${startText}' in '${text}': expected '@<first memory slice>', e.g. 3g.40gb@4`,
    };
  }
  const parsed = parseProfileName(text.slice(0, at));
  if (!parsed.ok) return parsed;
  return { ok: true, value: { profile: parsed.value, start: Number.parseInt(startText, 10) } };
}

export function formatProfileName(name: ProfileName): string {
  const prefix = name.computeSlices === name.gpuSlices ? "" : `${name.computeSlices}c.`;
  let suffix = "";
  if (name.attributes.length > 0) suffix = `+${name.attributes.join(",")}`;
  if (name.negativeAttributes.length > 0) suffix = `-${name.negativeAttributes.join(",")}`;
  return `${prefix}${name.gpuSlices}g.${name.memoryGB}gb${suffix}`;
}

export function formatPinnedProfileName(name: PinnedProfileName): string {
  return name.start === null ? formatProfileName(name.profile) : `${formatProfileName(name.profile)}@${name.start}`;
}

function sameSet(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  const sa = [...a].sort();
  const sb = [...b].sort();
  return sa.every((x, i) => x === sb[i]);
}

/** Same GPU-instance profile (g, memory, attributes), whatever the compute-instance part. */
export function sameGpuInstanceProfile(a: ProfileName, b: ProfileName): boolean {
  return (
    a.gpuSlices === b.gpuSlices &&
    a.memoryGB === b.memoryGB &&
    sameSet(a.attributes, b.attributes) &&
    sameSet(a.negativeAttributes, b.negativeAttributes)
  );
}

/** go-nvlib `Matches`: equal c, g, memory and attribute sets. */
export function profileNamesEqual(a: ProfileName, b: ProfileName): boolean {
  return a.computeSlices === b.computeSlices && sameGpuInstanceProfile(a, b);
}

const MIB = 1024 * 1024;
const GIB = 1024 * 1024 * 1024;

/**
 * The `<gb>` of a profile name (go-nvlib `getMigMemorySizeGB`): the instance's
 * share of memory rounded up to eighths, times the device total rounded up to
 * whole GiB. Using the device total is what makes names differ per model.
 */
export function migMemoryGB(memoryMiB: number, totalMemoryMiB: number): number {
  const totalBytes = totalMemoryMiB * MIB;
  const fraction = Math.ceil(((memoryMiB * MIB) / totalBytes) * 8) / 8;
  const totalGB = Math.ceil(totalBytes / GIB);
  // Go's math.Round rounds half away from zero; Math.round agrees for positives.
  return Math.round(fraction * totalGB);
}

/** Name attributes a GI profile index carries (go-nvlib `NewMigProfile`). */
export function profileIndexAttributes(index: number): { attributes: string[]; negativeAttributes: string[] } {
  switch (index) {
    case GpuInstanceProfileIndex.ONE_SLICE_REV1:
    case GpuInstanceProfileIndex.TWO_SLICE_REV1:
      return { attributes: ["me"], negativeAttributes: [] };
    case GpuInstanceProfileIndex.ONE_SLICE_ALL_ME:
    case GpuInstanceProfileIndex.TWO_SLICE_ALL_ME:
      return { attributes: ["me.all"], negativeAttributes: [] };
    case GpuInstanceProfileIndex.ONE_SLICE_GFX:
    case GpuInstanceProfileIndex.TWO_SLICE_GFX:
    case GpuInstanceProfileIndex.THREE_SLICE_GFX:
    case GpuInstanceProfileIndex.FOUR_SLICE_GFX:
      return { attributes: ["gfx"], negativeAttributes: [] };
    case GpuInstanceProfileIndex.ONE_SLICE_NO_ME:
    case GpuInstanceProfileIndex.TWO_SLICE_NO_ME:
      return { attributes: [], negativeAttributes: ["me"] };
    default:
      return { attributes: [], negativeAttributes: [] };
  }
}
