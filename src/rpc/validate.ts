// Request validation at the edge: every RPC's input is checked here and turned into domain types;
// a violation is INVALID_ARGUMENT naming the field (proto field names, as clients see them).

import { TesseraError } from "../errors.js";
import type {
  AllocateRequest,
  ApplyMigLayoutRequest,
  PlanMigLayoutRequest,
  ReleaseRequest,
  WatchNodeRequest,
} from "../gen/tessera/v1/agent_pb.js";
import type { AllocateRequest as DomainAllocate } from "../ledger/allocate.js";
import { parseProfileName } from "../mig/profile-name.js";

export class RequestFieldError extends TesseraError {
  readonly field: string;

  constructor(field: string, message: string) {
    super("TESSERA_INVALID_ARGUMENT", `${field}: ${message}`);
    this.field = field;
  }
}

const ID = /^[A-Za-z0-9][A-Za-z0-9._:@/+-]*$/;
const MAX_ID = 128;
const DEVICE_UUID = /^(GPU|MIG)-[0-9A-Za-z-]{8,80}$/;
const GPU_UUID = /^GPU-[0-9A-Za-z-]{8,80}$/;
export const MIN_WATCH_INTERVAL_MS = 100;
export const MAX_WATCH_INTERVAL_MS = 3_600_000;
const MAX_SPEC_BYTES = 1 << 20;
/** The largest memory-slice count any MIG GPU has (the planner handles up to 16). */
const MAX_PLACEMENT_START = 15;

export function identifier(field: string, value: string): string {
  if (value === "") throw new RequestFieldError(field, "must not be empty");
  if (value.length > MAX_ID) throw new RequestFieldError(field, `at most ${MAX_ID} characters, got ${value.length}`);
  if (!ID.test(value))
    throw new RequestFieldError(field, "letters, digits and . _ : @ / + - only, starting with a letter or digit");
  return value;
}

export function deviceUuid(field: string, value: string): string {
  if (value === "") throw new RequestFieldError(field, "must not be empty");
  if (!DEVICE_UUID.test(value))
    throw new RequestFieldError(field, `expected a GPU-… or MIG-… UUID, got "${clip(value)}"`);
  return value;
}

export function gpuUuid(field: string, value: string): string {
  if (value === "") throw new RequestFieldError(field, "must not be empty");
  if (!GPU_UUID.test(value)) throw new RequestFieldError(field, `expected a GPU-… UUID, got "${clip(value)}"`);
  return value;
}

function clip(v: string): string {
  return v.length > 40 ? `${v.slice(0, 40)}…` : v;
}

export function validateAllocate(req: AllocateRequest): DomainAllocate {
  const workloadId = identifier("workload_id", req.workloadId);
  const tenant = identifier("tenant", req.tenant);
  const t = req.target;
  if (t.case === "deviceUuid")
    return { workloadId, tenant, target: { kind: "device", uuid: deviceUuid("device_uuid", t.value) } };
  if (t.case === "newInstance") {
    const n = t.value;
    const gpu = gpuUuid("new_instance.gpu_uuid", n.gpuUuid);
    if (n.profile === "") throw new RequestFieldError("new_instance.profile", "must not be empty");
    const parsed = parseProfileName(n.profile);
    if (!parsed.ok) throw new RequestFieldError("new_instance.profile", parsed.error);
    if (parsed.value.computeSlices !== parsed.value.gpuSlices)
      throw new RequestFieldError(
        "new_instance.profile",
        `name a GPU-instance profile (e.g. 3g.40gb), not a compute-instance one (${n.profile})`,
      );
    if (n.placementStart !== undefined && n.placementStart > MAX_PLACEMENT_START)
      throw new RequestFieldError(
        "new_instance.placement_start",
        `at most ${MAX_PLACEMENT_START}, got ${n.placementStart}`,
      );
    return {
      workloadId,
      tenant,
      target: { kind: "new-instance", gpuUuid: gpu, profile: n.profile, placementStart: n.placementStart },
    };
  }
  throw new RequestFieldError("target", "set device_uuid or new_instance");
}

export function validateRelease(req: ReleaseRequest): string {
  return identifier("workload_id", req.workloadId);
}

export interface WatchParams {
  readonly intervalMs: number;
  readonly resumeAfterSeq: number;
  readonly eventsOnly: boolean;
}

export function validateWatch(req: WatchNodeRequest): WatchParams {
  if (req.intervalMs !== 0 && (req.intervalMs < MIN_WATCH_INTERVAL_MS || req.intervalMs > MAX_WATCH_INTERVAL_MS))
    throw new RequestFieldError(
      "interval_ms",
      `0 (the agent's interval) or ${MIN_WATCH_INTERVAL_MS}–${MAX_WATCH_INTERVAL_MS}, got ${req.intervalMs}`,
    );
  if (req.resumeAfterSeq > BigInt(Number.MAX_SAFE_INTEGER))
    throw new RequestFieldError("resume_after_seq", `at most ${Number.MAX_SAFE_INTEGER}`);
  return { intervalMs: req.intervalMs, resumeAfterSeq: Number(req.resumeAfterSeq), eventsOnly: req.eventsOnly };
}

function printable(v: string): boolean {
  if (v.length > 256) return false;
  for (let i = 0; i < v.length; i++) if (v.charCodeAt(i) < 0x20 || v.charCodeAt(i) === 0x7f) return false;
  return true;
}

export interface MigSpecParams {
  readonly specYaml: string;
  readonly specName: string;
  readonly configName: string | null;
}

export function validateMigSpec(req: PlanMigLayoutRequest | ApplyMigLayoutRequest): MigSpecParams {
  if (req.specYaml.trim() === "") throw new RequestFieldError("spec_yaml", "must not be empty");
  if (Buffer.byteLength(req.specYaml) > MAX_SPEC_BYTES)
    throw new RequestFieldError("spec_yaml", `at most ${MAX_SPEC_BYTES} bytes`);
  if (!printable(req.configName)) throw new RequestFieldError("config_name", "at most 256 printable characters");
  if (!printable(req.specName)) throw new RequestFieldError("spec_name", "at most 256 printable characters");
  return {
    specYaml: req.specYaml,
    specName: req.specName === "" ? "spec" : req.specName,
    configName: req.configName === "" ? null : req.configName,
  };
}
