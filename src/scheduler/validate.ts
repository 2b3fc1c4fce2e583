// Request validation at the scheduler's edge: every RPC's input is checked here and turned into
// domain types; a violation is INVALID_ARGUMENT naming the field (proto field names, as clients
// see them). Identifiers follow the agent's rules (src/rpc/validate.ts), since workload and tenant
// ids travel on to the agents.
import { isAbsolute } from "node:path";
import { parseHostPort } from "../agent/config.js";
import type {
  ExplainRequest,
  PlaceRequest,
  RegisterNodeRequest,
  ReleaseWorkloadRequest,
  WatchClusterRequest,
} from "../gen/tessera/v1/scheduler_pb.js";
import { parseProfileName } from "../mig/profile-name.js";
import { identifier, RequestFieldError } from "../rpc/validate.js";
import { SLICE_SEPARATOR } from "./cluster.js";
import { MAX_WORKLOAD_ID_LENGTH } from "./decisions.js";
import type { PlacementConstraints, PlacementRequest } from "./placement.js";

export const MAX_COUNT = 64;
const MAX_MODELS = 16;
const MAX_LABELS = 32;
const MAX_TEXT = 128;
const MAX_ADDRESS = 512;
export const MIN_WATCH_INTERVAL_MS = 100;
export const DEFAULT_WATCH_INTERVAL_MS = 1000;
const MAX_WATCH_INTERVAL_MS = 3_600_000;

export interface Registration {
  readonly nodeId: string;
  readonly address: string;
  /** 0: the scheduler's default. */
  readonly leaseTtlMs: number;
}

/** `unix:///absolute/path` or `host:port`. */
export function agentAddress(field: string, value: string): string {
  if (value === "") throw new RequestFieldError(field, "must not be empty");
  if (value.length > MAX_ADDRESS) throw new RequestFieldError(field, `at most ${MAX_ADDRESS} characters`);
  if (value.startsWith("unix:")) {
    const path = value.startsWith("unix://") ? value.slice("unix://".length) : value.slice("unix:".length);
    if (!isAbsolute(path)) throw new RequestFieldError(field, `a unix socket address needs an absolute path: ${value}`);
    return value;
  }
  if (parseHostPort(value) === undefined)
    throw new RequestFieldError(field, `expected host:port or unix:///path, got "${value.slice(0, 60)}"`);
  return value;
}

export function validateRegister(req: RegisterNodeRequest): Registration {
  return {
    nodeId: identifier("node_id", req.nodeId),
    address: agentAddress("address", req.address),
    leaseTtlMs: req.leaseTtlMs,
  };
}

function workloadId(field: string, value: string): string {
  identifier(field, value);
  if (value.includes(SLICE_SEPARATOR))
    throw new RequestFieldError(
      field,
      `must not contain '${SLICE_SEPARATOR}' (it numbers the slices of count > 1 workloads in the agents' lease tables)`,
    );
  if (value.length > MAX_WORKLOAD_ID_LENGTH)
    throw new RequestFieldError(field, `at most ${MAX_WORKLOAD_ID_LENGTH} characters, got ${value.length}`);
  return value;
}

function printable(field: string, value: string): string {
  if (value === "") throw new RequestFieldError(field, "must not be empty");
  if (value.length > MAX_TEXT) throw new RequestFieldError(field, `at most ${MAX_TEXT} characters`);
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) throw new RequestFieldError(field, "control characters are not allowed");
  }
  return value;
}

function constraintsOf(prefix: string, req: PlaceRequest): PlacementConstraints {
  const c = req.constraints;
  if (!c) return { gpuModels: [], needsRdma: false, nodeLabels: {} };
  if (c.gpuModels.length > MAX_MODELS)
    throw new RequestFieldError(`${prefix}constraints.gpu_models`, `at most ${MAX_MODELS} entries`);
  const gpuModels = c.gpuModels.map((m, i) => printable(`${prefix}constraints.gpu_models[${i}]`, m));
  const labels = Object.entries(c.nodeLabels);
  if (labels.length > MAX_LABELS)
    throw new RequestFieldError(`${prefix}constraints.node_labels`, `at most ${MAX_LABELS} entries`);
  for (const [k, v] of labels) {
    printable(`${prefix}constraints.node_labels`, k);
    if (v.length > MAX_TEXT)
      throw new RequestFieldError(`${prefix}constraints.node_labels[${k}]`, `at most ${MAX_TEXT} characters`);
  }
  return { gpuModels, needsRdma: c.needsRdma, nodeLabels: { ...c.nodeLabels } };
}

/** A PlaceRequest as the decision engine's PlacementRequest; `prefix` names the field path (`request.` in Explain). */
export function validatePlace(req: PlaceRequest, allowSimulated: boolean, prefix = ""): PlacementRequest {
  const id = workloadId(`${prefix}workload_id`, req.workloadId);
  const tenant = identifier(`${prefix}tenant`, req.tenant);
  const t = req.target;
  let target: PlacementRequest["target"];
  if (t.case === "profile") {
    if (t.value === "") throw new RequestFieldError(`${prefix}profile`, "must not be empty");
    const parsed = parseProfileName(t.value);
    if (!parsed.ok) throw new RequestFieldError(`${prefix}profile`, parsed.error);
    target = { kind: "profile", name: t.value };
  } else if (t.case === "shape") {
    const s = t.value;
    if (s.memoryMib > BigInt(Number.MAX_SAFE_INTEGER))
      throw new RequestFieldError(`${prefix}shape.memory_mib`, `at most ${Number.MAX_SAFE_INTEGER}`);
    if (!Number.isFinite(s.computeFraction) || s.computeFraction < 0 || s.computeFraction > 1)
      throw new RequestFieldError(`${prefix}shape.compute_fraction`, `must be within 0…1, got ${s.computeFraction}`);
    const memoryMiB = Number(s.memoryMib);
    if (memoryMiB === 0 && s.computeFraction === 0)
      throw new RequestFieldError(`${prefix}shape`, "asks for neither memory nor compute");
    target = { kind: "shape", memoryMiB, computeFraction: s.computeFraction };
  } else {
    throw new RequestFieldError(`${prefix}target`, "set profile or shape");
  }
  const count = req.count === 0 ? 1 : req.count;
  if (count > MAX_COUNT) throw new RequestFieldError(`${prefix}count`, `at most ${MAX_COUNT}, got ${count}`);
  return {
    workloadId: id,
    tenant,
    target,
    count,
    constraints: constraintsOf(prefix, req),
    priority: req.priority,
    allowSimulated,
  };
}

export function validateExplain(req: ExplainRequest, allowSimulated: boolean): PlacementRequest {
  if (!req.request) throw new RequestFieldError("request", "must be set");
  return validatePlace(req.request, allowSimulated, "request.");
}

export function validateReleaseWorkload(req: ReleaseWorkloadRequest): { workloadId: string; tenant: string | null } {
  return {
    workloadId: identifier("workload_id", req.workloadId),
    tenant: req.tenant === "" ? null : identifier("tenant", req.tenant),
  };
}

export function validateWatchCluster(req: WatchClusterRequest): { intervalMs: number } {
  if (req.intervalMs === 0) return { intervalMs: DEFAULT_WATCH_INTERVAL_MS };
  if (req.intervalMs < MIN_WATCH_INTERVAL_MS || req.intervalMs > MAX_WATCH_INTERVAL_MS)
    throw new RequestFieldError(
      "interval_ms",
      `0 (the default, ${DEFAULT_WATCH_INTERVAL_MS} ms) or ${MIN_WATCH_INTERVAL_MS}–${MAX_WATCH_INTERVAL_MS}, got ${req.intervalMs}`,
    );
  return { intervalMs: req.intervalMs };
}
