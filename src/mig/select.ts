// Resolves a named config of a spec against a host's GPUs: which entries
// select which GPU (PCI id filter, index, UUID, model), and what each profile
// name means on that GPU's model. Entries apply in order, so a later entry
// that selects a GPU replaces what an earlier one asked for (mig-parted
// applies them one after the other with the same result).

import { InputError } from "../errors.js";
import { describeStarts, findGpuInstanceProfile, isLegalPlacement } from "./geometry.js";
import type { PlanTarget } from "./plan.js";
import type { MigConfig, MigConfigEntry, MigDeviceRequest, MigSpec, SourcePosition } from "./spec.js";
import type { ComputeProfile, DesiredInstance, DesiredLayout, GpuGeometry, HostGpu, MigProfile } from "./types.js";

export interface ResolvedTarget extends PlanTarget {
  /** The entry that decided this GPU's layout. */
  readonly source: SourcePosition;
}

export interface ResolvedMigConfig {
  readonly config: string;
  /** One per selected GPU, by GPU index. GPUs no entry selects are absent: they stay as they are. */
  readonly targets: readonly ResolvedTarget[];
  /** Selections that matched nothing on this host (an index or UUID it does not have). */
  readonly warnings: readonly string[];
}

function fail(message: string, at: SourcePosition): InputError {
  return new InputError(message, { file: at.file, line: at.line, column: at.column });
}

/** mig-parted's choice: the named config, or the only one when no name is given. */
export function selectMigConfig(spec: MigSpec, name: string | null): MigConfig {
  const names = spec.configs.map((c) => c.name);
  if (name === null) {
    const only = spec.configs[0];
    if (spec.configs.length === 1 && only) return only;
    throw new InputError(
      spec.configs.length === 0
        ? "the spec has no mig-configs"
        : `the spec has ${spec.configs.length} mig-configs; choose one of: ${names.join(", ")}`,
      { file: spec.file },
    );
  }
  const found = spec.configs.find((c) => c.name === name);
  if (!found) {
    throw new InputError(`mig-config '${name}' is not in the spec; available: ${names.join(", ")}`, {
      file: spec.file,
    });
  }
  return found;
}

/** Whether an entry selects this GPU (every given selector must match). */
export function entryMatches(entry: MigConfigEntry, gpu: HostGpu): boolean {
  const filterOk =
    entry.deviceFilter.length === 0 ||
    entry.deviceFilter.some(
      (f) =>
        f.pciDeviceId === gpu.pciDeviceId && (f.pciSubsystemId === null || f.pciSubsystemId === gpu.pciSubsystemId),
    );
  const modelOk =
    entry.deviceModels.length === 0 || entry.deviceModels.some((m) => m.toLowerCase() === gpu.model.toLowerCase());
  const devicesOk =
    entry.devices === "all" ||
    entry.devices.some((d) =>
      d.kind === "index" ? d.index === gpu.index : d.uuid.toLowerCase() === gpu.uuid.toLowerCase(),
    );
  return filterOk && modelOk && devicesOk;
}

function gpuLabel(gpu: HostGpu): string {
  return `GPU ${gpu.index} (${gpu.model})`;
}

function validProfiles(geometry: GpuGeometry): string {
  return geometry.profiles.map((p) => p.name).join(", ");
}

interface Resolved {
  readonly request: MigDeviceRequest;
  readonly gi: MigProfile;
  readonly ci: ComputeProfile;
}

function resolveRequest(request: MigDeviceRequest, gpu: HostGpu, geometry: GpuGeometry): Resolved {
  const gi = findGpuInstanceProfile(geometry, request.profile);
  if (!gi) {
    throw fail(
      `unknown MIG profile '${request.key}' for ${gpuLabel(gpu)}; valid profiles on this model: ${validProfiles(geometry)}`,
      request.at,
    );
  }
  const c = request.profile.computeSlices;
  const ci =
    c === gi.sliceCount
      ? gi.computeProfiles.find((p) => p.id === gi.defaultComputeProfileId)
      : gi.computeProfiles.filter((p) => p.sliceCount === c).sort((a, b) => a.index - b.index)[0];
  if (!ci) {
    throw fail(
      `'${request.key}': ${gi.name} on ${gpuLabel(gpu)} has no ${c}-slice compute instance; valid: ${gi.computeProfiles.map((p) => p.name).join(", ")}`,
      request.at,
    );
  }
  if (request.start !== null && !isLegalPlacement(gi, request.start)) {
    throw fail(
      `'${request.key}': ${gi.name} cannot start at memory slice ${request.start} on ${gpuLabel(gpu)}; legal starts: ${describeStarts(gi.placements)}`,
      request.at,
    );
  }
  return { request, gi, ci };
}

interface Building {
  readonly gi: MigProfile;
  readonly start: number | null;
  readonly cis: ComputeProfile[];
}

function fits(b: Building, ci: ComputeProfile): boolean {
  const used = b.cis.reduce((n, x) => n + x.sliceCount, 0);
  const same = b.cis.filter((x) => x.id === ci.id).length;
  return used + ci.sliceCount <= b.gi.sliceCount && same < ci.maxInstances;
}

function toDesired(b: Building): DesiredInstance {
  const cis = [...b.cis].sort((x, y) => y.sliceCount - x.sliceCount || x.id - y.id);
  return { profileId: b.gi.id, start: b.start, computeProfileIds: cis.map((c) => c.id) };
}

/**
 * The desired layout an entry asks of one GPU. Unpinned compute instances
 * are packed as mig-parted packs them: sorted by GPU-instance size then
 * compute size, each joins the previous GPU instance of the same profile if
 * it still fits there, else starts a new one (so `1c.3g.40gb: 3` is one 3g
 * instance split three ways). Pinned keys sharing a start form one instance.
 */
export function desiredLayoutFor(entry: MigConfigEntry, gpu: HostGpu, geometry: GpuGeometry): DesiredLayout {
  if (!entry.migEnabled) return { mode: "disabled", instances: [] };
  const resolved = entry.migDevices.filter((r) => r.count > 0).map((r) => resolveRequest(r, gpu, geometry));

  const flat = resolved
    .filter((r) => r.request.start === null)
    .flatMap((r) => Array.from({ length: r.request.count }, () => r))
    .sort(
      (a, b) =>
        b.gi.sliceCount - a.gi.sliceCount ||
        b.gi.memorySlices - a.gi.memorySlices ||
        a.gi.id - b.gi.id ||
        b.ci.sliceCount - a.ci.sliceCount ||
        a.ci.id - b.ci.id,
    );
  const unpinned: Building[] = [];
  for (const r of flat) {
    const last = unpinned[unpinned.length - 1];
    if (last && last.gi.id === r.gi.id && fits(last, r.ci)) last.cis.push(r.ci);
    else unpinned.push({ gi: r.gi, start: null, cis: [r.ci] });
  }

  const pinned = new Map<number, Building>();
  for (const r of resolved) {
    if (r.request.start === null) continue;
    const b = pinned.get(r.request.start) ?? { gi: r.gi, start: r.request.start, cis: [] };
    for (let i = 0; i < r.request.count; i++) {
      if (!fits(b, r.ci)) {
        const have = b.cis.map((c) => c.name).join(" + ") || "nothing";
        throw fail(
          `'${r.request.key}': the ${b.gi.name} instance at memory slice ${r.request.start} cannot hold another ${r.ci.name} (it already holds ${have}; at most ${r.ci.maxInstances} × ${r.ci.name} and ${b.gi.sliceCount} compute slices)`,
          r.request.at,
        );
      }
      b.cis.push(r.ci);
    }
    pinned.set(r.request.start, b);
  }
  return {
    mode: "enabled",
    instances: [...[...pinned.values()].sort((a, b) => (a.start ?? 0) - (b.start ?? 0)), ...unpinned].map(toDesired),
  };
}

/**
 * Resolves config `name` (or the only config) for the host's GPUs. Throws
 * `InputError` at the offending line when a profile does not exist on a
 * selected GPU's model, a placement is illegal there, or a selected GPU
 * cannot do MIG.
 */
export function resolveMigConfig(spec: MigSpec, name: string | null, gpus: readonly HostGpu[]): ResolvedMigConfig {
  const config = selectMigConfig(spec, name);
  const chosen = new Map<number, ResolvedTarget>();
  const warnings: string[] = [];
  for (const entry of config.entries) {
    if (entry.devices !== "all") {
      for (const d of entry.devices) {
        const present = gpus.some((g) =>
          d.kind === "index" ? g.index === d.index : g.uuid.toLowerCase() === d.uuid.toLowerCase(),
        );
        if (!present) {
          const what = d.kind === "index" ? `GPU index ${d.index}` : `GPU ${d.uuid}`;
          warnings.push(`${entry.at.file}:${entry.at.line}: selects ${what}, which this host does not have`);
        }
      }
    }
    for (const gpu of gpus) {
      if (!entryMatches(entry, gpu)) continue;
      if (gpu.geometry === null) {
        // mig-parted skips non-MIG GPUs under `devices: all` and when MIG is to be off.
        if (entry.devices === "all" || !entry.migEnabled) continue;
        throw fail(`${gpuLabel(gpu)} is not MIG-capable; leave it out of 'devices'`, entry.at);
      }
      chosen.set(gpu.index, { gpu, desired: desiredLayoutFor(entry, gpu, gpu.geometry), source: entry.at });
    }
  }
  const targets = [...chosen.values()].sort((a, b) => a.gpu.index - b.gpu.index);
  return { config: config.name, targets, warnings };
}
