// Placement: a request and the cluster view in, the chosen slices (or every
// candidate with its score and every rejection with its reason) out. Pure:
// it reads the view and changes nothing.
//
// Candidates, best first (policy "fragmentation"):
//   1. healthy GPUs before degraded ones (the agent still lets degraded GPUs take work);
//   2. least growth of fragmentation (reference/scheduling.md §5.2, weights from the recent
//      request mix; see `lossOf`): the placement that keeps the most of what is asked for placeable;
//   3. best fit: fewest free memory slices left on the GPU;
//   4. node packing: the fuller node (smaller free share);
//   5. least internal waste (shapes), then GPU order, existing devices before new instances, lowest start.
// Static nodes offer their free MIG devices; dynamic nodes also offer new GPU instances at any
// legal free placement. Baselines for the benches: "best-fit" drops key 2, "first-fit" ranks by
// GPU order alone.

import { popcount } from "../mig/geometry.js";
import type { MigProfile, Placement } from "../mig/types.js";
import {
  type ClusterView,
  type GpuState,
  type InstanceSlot,
  type NodeState,
  nodeUnavailableReason,
  orderedGpus,
} from "./cluster.js";
import { type DemandWeights, weightOf } from "./demand-histogram.js";
import { bestCarveTable, type GeometryTables, lossOf, placementFree, weightVector } from "./geometry-tables.js";
import {
  isPlainProfile,
  profileClassKey,
  profileHoldsShape,
  type ResolvedTarget,
  resolveTarget,
  type SliceTarget,
  type Waste,
  wasteOf,
} from "./profiles.js";

export type PlacementPolicy = "fragmentation" | "best-fit" | "first-fit";

export interface PlacementConstraints {
  /** GPU models allowed (case-insensitive substring of the NVML name: "H100", "A100-SXM4-80GB"); empty allows all. */
  readonly gpuModels: readonly string[];
  /** The GPU's nearest healthy NIC must be within PXB (GPUDirect RDMA). */
  readonly needsRdma: boolean;
  /** Every label must be on the node with this value. */
  readonly nodeLabels: Readonly<Record<string, string>>;
}

export interface PlacementRequest {
  readonly workloadId: string;
  readonly tenant: string;
  readonly target: SliceTarget;
  /** Slices, all on one node, all or nothing. */
  readonly count: number;
  readonly constraints: PlacementConstraints;
  /** Carried for the service (ordering, later preemption); placement does not use it. */
  readonly priority: number;
  readonly allowSimulated: boolean;
}

export interface PlacementContext {
  readonly nowMs: number;
  readonly weights: DemandWeights;
  readonly policy: PlacementPolicy;
}

export const NO_CONSTRAINTS: PlacementConstraints = { gpuModels: [], needsRdma: false, nodeLabels: {} };

export type SliceAction = "use-device" | "carve";

export interface SliceChoice {
  readonly nodeId: string;
  readonly gpuUuid: string;
  readonly gpuIndex: number;
  readonly model: string;
  readonly action: SliceAction;
  readonly profileId: number;
  readonly profileName: string;
  readonly placement: Placement;
  /** The existing MIG device (use-device); null when a new instance is carved. */
  readonly migUuid: string | null;
  readonly gpuInstanceId: number | null;
  readonly computeInstanceId: number | null;
  readonly computeSlices: number;
  readonly memorySlices: number;
  /** What rounding the shape up to this profile wastes; null for a named profile. */
  readonly waste: Waste | null;
  /** This slice's growth of fragmentation (ranking key; see `lossOf`). */
  readonly fragmentationGrowth: number;
}

export interface CandidateScore {
  readonly degraded: boolean;
  /** Σ over slices of the growth of fragmentation (§5.2 ΔF plus own footprint). */
  readonly fragmentationGrowth: number;
  /** Free memory slices left on the chosen GPUs (best fit). */
  readonly leftoverSlices: number;
  /** The node's free and schedulable memory slices before placement (node packing). */
  readonly nodeFreeSlices: number;
  readonly nodeTotalSlices: number;
  readonly wasteMiB: number;
}

export interface Candidate {
  readonly nodeId: string;
  readonly slices: readonly SliceChoice[];
  readonly score: CandidateScore;
}

export type RejectionCode =
  | "node-unavailable"
  | "node-simulated"
  | "node-labels"
  | "node-too-small"
  | "gpu-model"
  | "gpu-not-mig-capable"
  | "gpu-mig-disabled"
  | "gpu-lost"
  | "gpu-unhealthy"
  | "gpu-xid"
  | "gpu-rdma"
  | "gpu-whole-leased"
  | "no-profile"
  | "no-adequate-profile"
  | "max-instances"
  | "media-extensions-taken"
  | "compute-slices"
  | "no-free-placement"
  | "no-free-device";

export const REJECTION_CODES: readonly RejectionCode[] = [
  "node-unavailable",
  "node-simulated",
  "node-labels",
  "node-too-small",
  "gpu-model",
  "gpu-not-mig-capable",
  "gpu-mig-disabled",
  "gpu-lost",
  "gpu-unhealthy",
  "gpu-xid",
  "gpu-rdma",
  "gpu-whole-leased",
  "no-profile",
  "no-adequate-profile",
  "max-instances",
  "media-extensions-taken",
  "compute-slices",
  "no-free-placement",
  "no-free-device",
];
const CODE_INDEX = Object.fromEntries(REJECTION_CODES.map((c, i) => [c, i])) as Readonly<Record<RejectionCode, number>>;

export interface Rejection {
  readonly nodeId: string;
  /** Null for a rejection of the whole node. */
  readonly gpuUuid: string | null;
  readonly gpuIndex: number | null;
  readonly code: RejectionCode;
  readonly detail: string;
}

export type PlacementOutcome =
  | { readonly ok: true; readonly decision: Candidate }
  | {
      readonly ok: false;
      /** "no GPU can take 3g.40gb: 12 no-free-placement, 2 gpu-unhealthy". */
      readonly summary: string;
      readonly rejectionCounts: Readonly<Partial<Record<RejectionCode, number>>>;
    };

export interface ModelMapping {
  readonly model: string;
  readonly profileName: string | null;
  readonly waste: Waste | null;
  readonly detail: string | null;
}

export interface Explanation {
  readonly request: PlacementRequest;
  readonly policy: PlacementPolicy;
  /** What the request means on each GPU model of the cluster. */
  readonly mappings: readonly ModelMapping[];
  /** The weight of each profile class the request could use (the rest of the mix is in `weights`). */
  readonly weights: Readonly<Record<string, number>>;
  /** Every feasible candidate, best first. */
  readonly candidates: readonly Candidate[];
  readonly rejections: readonly Rejection[];
  /** `candidates[0]`, or null. */
  readonly decision: Candidate | null;
}

// ---- scoring keys ----

const ACTION_DEVICE = 0;
const ACTION_CARVE = 1;

/** A candidate's ranking keys as plain numbers, so the hot loop allocates nothing. */
class Key {
  degraded = 0;
  growth = 0;
  leftover = 0;
  nodeFree = 0;
  nodeTotal = 1;
  waste = 0;
  ordinal = 0;
  action = 0;
  start = 0;

  copyFrom(o: Key): void {
    this.degraded = o.degraded;
    this.growth = o.growth;
    this.leftover = o.leftover;
    this.nodeFree = o.nodeFree;
    this.nodeTotal = o.nodeTotal;
    this.waste = o.waste;
    this.ordinal = o.ordinal;
    this.action = o.action;
    this.start = o.start;
  }
}

function compareNodeFullness(a: Key, b: Key): number {
  // free share a.nodeFree/a.nodeTotal vs b's, without division (integers).
  return a.nodeFree * b.nodeTotal - b.nodeFree * a.nodeTotal;
}

function compareKeys(policy: PlacementPolicy, a: Key, b: Key): number {
  if (a.degraded !== b.degraded) return a.degraded - b.degraded;
  if (policy === "first-fit") {
    return a.ordinal - b.ordinal || a.waste - b.waste || a.action - b.action || a.start - b.start;
  }
  if (policy === "fragmentation" && a.growth !== b.growth) return a.growth - b.growth;
  return (
    a.leftover - b.leftover ||
    compareNodeFullness(a, b) ||
    a.waste - b.waste ||
    a.ordinal - b.ordinal ||
    a.action - b.action ||
    a.start - b.start
  );
}

// ---- per-request caches ----

interface TargetOnModel {
  readonly resolved: ResolvedTarget;
  /** Profile index in the tables, −1 when unresolved. */
  readonly q: number;
  readonly vector: Float64Array;
  /** Bit p: an existing device of profile index p serves the request. */
  readonly deviceProfiles: number;
}

class RequestScope {
  readonly models = new Map<string, boolean>();
  readonly targets = new Map<GeometryTables, TargetOnModel>();
  readonly wantedModels: readonly string[];
  readonly labelEntries: readonly [string, string][];

  constructor(
    readonly request: PlacementRequest,
    readonly ctx: PlacementContext,
  ) {
    this.wantedModels = request.constraints.gpuModels.map((m) => m.toLowerCase());
    this.labelEntries = Object.entries(request.constraints.nodeLabels);
  }

  modelAllowed(model: string): boolean {
    if (this.wantedModels.length === 0) return true;
    let ok = this.models.get(model);
    if (ok === undefined) {
      const lower = model.toLowerCase();
      ok = this.wantedModels.some((m) => lower.includes(m));
      this.models.set(model, ok);
    }
    return ok;
  }

  target(t: GeometryTables): TargetOnModel {
    let r = this.targets.get(t);
    if (!r) {
      const resolved = resolveTarget(t.geometry, this.request.target);
      const q = resolved.ok ? t.geometry.profiles.indexOf(resolved.profile) : -1;
      let deviceProfiles = 0;
      if (q >= 0) {
        for (let p = 0; p < t.keys.length && p < 31; p++) {
          if (deviceServes(t, p, q, this.request.target)) deviceProfiles |= 1 << p;
        }
      }
      r = { resolved, q, vector: weightVector(t, this.ctx.weights), deviceProfiles };
      this.targets.set(t, r);
    }
    return r;
  }
}

// ---- checks ----

function nodeCheck(node: NodeState, scope: RequestScope): RejectionCode | null {
  if (nodeUnavailableReason(node, scope.ctx.nowMs) !== null) return "node-unavailable";
  if (node.simulated && !scope.request.allowSimulated) return "node-simulated";
  for (const [k, v] of scope.labelEntries) if (node.labels[k] !== v) return "node-labels";
  return null;
}

function nodeDetail(code: RejectionCode, node: NodeState, scope: RequestScope): string {
  switch (code) {
    case "node-unavailable":
      return nodeUnavailableReason(node, scope.ctx.nowMs) ?? "unavailable";
    case "node-simulated":
      return "simulated node (NVML is Tessera's simulator); the request does not allow simulated nodes";
    case "node-labels": {
      const missing = scope.labelEntries
        .filter(([k, v]) => node.labels[k] !== v)
        .map(([k, v]) => `${k}=${v} (node has ${node.labels[k] === undefined ? "none" : node.labels[k]})`);
      return `labels do not match: ${missing.join(", ")}`;
    }
    default:
      return code;
  }
}

const RDMA_DISTANCES = new Set(["PIX", "PXB"]);

function gpuCheck(gpu: GpuState, scope: RequestScope): RejectionCode | null {
  if (!scope.modelAllowed(gpu.model)) return "gpu-model";
  if (gpu.lost) return "gpu-lost";
  if (gpu.health.state === "unhealthy") return "gpu-unhealthy";
  if (gpu.xidHoldUntilMs >= scope.ctx.nowMs) return "gpu-xid";
  if (gpu.tables === null) return "gpu-not-mig-capable";
  if (!gpu.migEnabled) return "gpu-mig-disabled";
  if (scope.request.constraints.needsRdma) {
    const nic = gpu.nic;
    if (!nic || nic.nearestNic === "" || nic.rdmaDegraded || !RDMA_DISTANCES.has(nic.distance)) return "gpu-rdma";
  }
  if (gpu.wholeLeasedBy !== null) return "gpu-whole-leased";
  return null;
}

function gpuDetail(code: RejectionCode, gpu: GpuState, scope: RequestScope): string {
  switch (code) {
    case "gpu-model":
      return `model ${gpu.model} is not one of ${scope.request.constraints.gpuModels.join(", ")}`;
    case "gpu-lost":
      return "GPU is lost (NVML answers GPU_IS_LOST)";
    case "gpu-unhealthy":
      return `unhealthy: ${gpu.health.reasons.join("; ") || "no reason given"}`;
    case "gpu-xid":
      return `${gpu.xidReason ?? "critical XID"}; held out of placement for ${Math.round(gpu.xidHoldUntilMs - scope.ctx.nowMs)} ms more`;
    case "gpu-not-mig-capable":
      return "not MIG-capable";
    case "gpu-mig-disabled":
      return "MIG mode is disabled";
    case "gpu-rdma": {
      const nic = gpu.nic;
      if (!nic || nic.nearestNic === "") return "needs RDMA: no healthy NIC near this GPU";
      return `needs RDMA: nearest healthy NIC ${nic.nearestNic} is at ${nic.distance || "unknown distance"}${nic.rdmaDegraded ? " (degraded)" : ""}, farther than PXB`;
    }
    case "gpu-whole-leased":
      return `the whole GPU is leased by ${gpu.wholeLeasedBy}`;
    default:
      return code;
  }
}

// ---- option evaluation on one GPU ----

/** What option evaluation reads of a GPU: GpuState itself, or a scratch copy while packing several slices on a node. */
interface GpuFacts {
  gpu: GpuState;
  instanceMask: number;
  heldMask: number;
  counts: Int32Array;
  meTaken: boolean;
  meHeld: boolean;
  computeUsed: number;
  /** Slots already taken by earlier slices of the same request (scratch only). */
  usedSlots: Set<InstanceSlot> | null;
}

interface OptionSink {
  /** Visit every free start (Explain), not only the best one per GPU. */
  readonly allStarts: boolean;
  offer(facts: GpuFacts, action: number, q: number, start: number, slot: InstanceSlot | null, key: Key): void;
}

function factsOf(gpu: GpuState): GpuFacts {
  return fillFacts(
    {
      gpu,
      instanceMask: 0,
      heldMask: 0,
      counts: gpu.counts,
      meTaken: false,
      meHeld: false,
      computeUsed: 0,
      usedSlots: null,
    },
    gpu,
  );
}

/** Loads a GPU into a facts object (the single-slice scan reuses one, so it allocates nothing per GPU). */
function fillFacts(f: GpuFacts, gpu: GpuState): GpuFacts {
  f.gpu = gpu;
  f.instanceMask = gpu.instanceMask;
  f.heldMask = gpu.heldMask;
  f.counts = gpu.counts;
  f.meTaken = gpu.meTaken;
  f.meHeld = gpu.meHeld;
  f.computeUsed = gpu.computeUsed;
  f.usedSlots = null;
  return f;
}

function remainingOf(t: GeometryTables, counts: Int32Array): Int32Array | null {
  if (!t.countSensitive) return null;
  const r = new Int32Array(counts.length);
  for (let i = 0; i < counts.length; i++) r[i] = (t.maxInstances[i] as number) - (counts[i] as number);
  return r;
}

/** Whether an existing device of profile index p serves the request. */
function deviceServes(t: GeometryTables, p: number, q: number, target: SliceTarget): boolean {
  if (target.kind === "profile") return p === q;
  const profile = t.geometry.profiles[p] as MigProfile;
  return isPlainProfile(profile) && profileHoldsShape(profile, t.computeSliceCount, target);
}

function wasteMiBOf(t: GeometryTables, p: number, target: SliceTarget): number {
  if (target.kind !== "shape") return 0;
  return (t.geometry.profiles[p] as MigProfile).memoryMiB - target.memoryMiB;
}

/**
 * Offers every option of one GPU to the sink (existing free devices; on
 * dynamic nodes, new instances) and returns why there was none, or null.
 * The target must be resolved on this GPU's model.
 */
function evaluateGpu(
  f: GpuFacts,
  target: TargetOnModel,
  scope: RequestScope,
  sink: OptionSink,
  key: Key,
  nodeFree: number,
  nodeTotal: number,
): RejectionCode | null {
  const gpu = f.gpu;
  const dynamic = gpu.node.dynamicMig;
  const anyDevice = (gpu.freeDeviceProfiles & target.deviceProfiles) !== 0;
  if (!dynamic && !anyDevice) return "no-free-device";
  const t = gpu.tables as GeometryTables;
  const policy = scope.ctx.policy;
  const fragment = policy === "fragmentation";
  const req = scope.request.target;
  const vector = target.vector;
  const q = target.q;
  const freeFrag = t.fullMask & ~f.heldMask;
  const freeFragCount = popcount(freeFrag);
  let offered = false;

  key.degraded = gpu.health.state === "healthy" ? 0 : 1;
  key.nodeFree = nodeFree;
  key.nodeTotal = Math.max(1, nodeTotal);
  key.ordinal = gpu.ordinal;

  // Existing free MIG devices.
  if (anyDevice) {
    let freeDeviceSlices = 0;
    for (const s of gpu.slots) {
      if (s.leasedBy === null && !s.busy && s.migUuid !== null && s.profileIndex >= 0 && !f.usedSlots?.has(s)) {
        freeDeviceSlices += s.size;
      }
    }
    for (const s of gpu.slots) {
      if (s.leasedBy !== null || s.busy || s.migUuid === null || s.profileIndex < 0 || f.usedSlots?.has(s)) continue;
      const p = s.profileIndex;
      if (!deviceServes(t, p, q, req)) continue;
      const size = t.sizes[p] as number;
      let growth = 0;
      if (fragment) {
        growth = dynamic
          ? lossOf(t, vector, p, s.start, freeFrag, f.meHeld, remainingOf(t, f.counts))
          : // Static: the layout never changes, so the only loss is the device itself.
            Math.round((vector[p] as number) * size * 1e9) / 1e9;
      }
      key.growth = growth;
      key.leftover = (dynamic ? freeFragCount : freeDeviceSlices) - size;
      key.waste = wasteMiBOf(t, p, req);
      key.action = ACTION_DEVICE;
      key.start = s.start;
      sink.offer(f, ACTION_DEVICE, p, s.start, s, key);
      offered = true;
    }
  }
  if (!dynamic) return offered ? null : "no-free-device";

  // New GPU instances (dynamic nodes).
  if ((f.counts[q] as number) >= (t.maxInstances[q] as number)) return offered ? null : "max-instances";
  if (t.mediaExtensions[q] === 1 && f.meTaken) return offered ? null : "media-extensions-taken";
  if (f.computeUsed + (t.computeSlices[q] as number) > t.computeSliceCount) return offered ? null : "compute-slices";
  const freeInst = t.fullMask & ~f.instanceMask;
  const size = t.sizes[q] as number;
  key.leftover = freeFragCount - size;
  key.waste = wasteMiBOf(t, q, req);
  key.action = ACTION_CARVE;
  const simple = t.tabulated && freeInst === freeFrag && f.meTaken === f.meHeld;
  if (fragment && simple && !sink.allStarts) {
    const table = bestCarveTable(t, scope.ctx.weights, q);
    const i = ((f.meTaken ? 1 : 0) << t.memorySliceCount) | freeInst;
    const start = table.start[i] as number;
    if (start < 0) return offered ? null : "no-free-placement";
    key.growth = table.loss[i] as number;
    key.start = start;
    sink.offer(f, ACTION_CARVE, q, start, null, key);
    return null;
  }
  const remaining = fragment ? remainingOf(t, f.counts) : null;
  for (const start of t.starts[q] as Int32Array) {
    if (!placementFree(t, q, start, freeInst)) continue;
    key.growth = fragment ? lossOf(t, vector, q, start, freeFrag, f.meHeld, remaining) : 0;
    key.start = start;
    key.action = ACTION_CARVE;
    sink.offer(f, ACTION_CARVE, q, start, null, key);
    offered = true;
    // Without the fragmentation term every start of a GPU ties; the lowest wins.
    if (!fragment && !sink.allStarts) break;
  }
  return offered ? null : "no-free-placement";
}

function sliceChoice(
  gpu: GpuState,
  action: number,
  p: number,
  start: number,
  slot: InstanceSlot | null,
  target: SliceTarget,
  growth: number,
): SliceChoice {
  const t = gpu.tables as GeometryTables;
  const profile = t.geometry.profiles[p] as MigProfile;
  return {
    nodeId: gpu.node.nodeId,
    gpuUuid: gpu.uuid,
    gpuIndex: gpu.index,
    model: gpu.model,
    action: action === ACTION_DEVICE ? "use-device" : "carve",
    profileId: profile.id,
    profileName: profile.name,
    placement: { start, size: profile.memorySlices },
    migUuid: slot?.migUuid ?? null,
    gpuInstanceId: slot?.giId ?? null,
    computeInstanceId: slot?.ciId ?? null,
    computeSlices: profile.sliceCount,
    memorySlices: profile.memorySlices,
    waste: target.kind === "shape" ? wasteOf(profile, t.computeSliceCount, target) : null,
    fragmentationGrowth: growth,
  };
}

/** Keeps the best option seen. */
class BestSink implements OptionSink {
  readonly allStarts = false;
  readonly key = new Key();
  facts: GpuFacts | null = null;
  /** The GPU of `facts`, kept apart because the single-slice path reuses one facts object. */
  gpu: GpuState | null = null;
  action = 0;
  q = -1;
  start = -1;
  slot: InstanceSlot | null = null;

  constructor(private readonly policy: PlacementPolicy) {}

  offer(facts: GpuFacts, action: number, q: number, start: number, slot: InstanceSlot | null, key: Key): void {
    if (this.facts !== null && compareKeys(this.policy, key, this.key) >= 0) return;
    this.key.copyFrom(key);
    this.facts = facts;
    this.gpu = facts.gpu;
    this.action = action;
    this.q = q;
    this.start = start;
    this.slot = slot;
  }

  clear(): void {
    this.facts = null;
    this.gpu = null;
  }
}

interface CollectedOption {
  readonly facts: GpuFacts;
  readonly action: number;
  readonly q: number;
  readonly start: number;
  readonly slot: InstanceSlot | null;
  readonly key: Key;
}

class CollectSink implements OptionSink {
  readonly allStarts = true;
  readonly options: CollectedOption[] = [];

  offer(facts: GpuFacts, action: number, q: number, start: number, slot: InstanceSlot | null, key: Key): void {
    const k = new Key();
    k.copyFrom(key);
    this.options.push({ facts, action, q, start, slot, key: k });
  }
}

function scoreOf(key: Key, nodeFree: number, nodeTotal: number): CandidateScore {
  return {
    degraded: key.degraded === 1,
    fragmentationGrowth: key.growth,
    leftoverSlices: key.leftover,
    nodeFreeSlices: nodeFree,
    nodeTotalSlices: nodeTotal,
    wasteMiB: key.waste,
  };
}

function targetLabel(target: SliceTarget): string {
  return target.kind === "profile"
    ? target.name
    : `a shape of ${target.memoryMiB} MiB and ${(target.computeFraction * 100).toFixed(1)}% compute`;
}

function summarize(request: PlacementRequest, tally: Int32Array): PlacementOutcome {
  const counts: Partial<Record<RejectionCode, number>> = {};
  const parts: string[] = [];
  REJECTION_CODES.forEach((code, i) => {
    const n = tally[i] as number;
    if (n > 0) {
      counts[code] = n;
      parts.push(`${n} ${code}`);
    }
  });
  const what =
    request.count > 1 ? `${request.count} × ${targetLabel(request.target)} on one node` : targetLabel(request.target);
  return {
    ok: false,
    summary: `no GPU can take ${what}: ${parts.length > 0 ? parts.join(", ") : "the cluster has no GPUs"}`,
    rejectionCounts: counts,
  };
}

function bump(tally: Int32Array, code: RejectionCode, n = 1): void {
  const i = CODE_INDEX[code];
  tally[i] = (tally[i] as number) + n;
}

// ---- several slices on one node ----

interface NodeGroup {
  readonly node: NodeState;
  readonly slices: SliceChoice[];
  readonly key: Key;
}

/**
 * Packs `count` slices onto one node greedily (each the best option given
 * the earlier ones), on scratch copies of the GPUs' state. Returns null and
 * how many fit when not all do.
 */
function packNode(
  node: NodeState,
  gpus: readonly { readonly gpu: GpuState; readonly target: TargetOnModel }[],
  scope: RequestScope,
): { group: NodeGroup | null; fitted: number } {
  const facts = gpus.map(({ gpu }) => ({
    ...factsOf(gpu),
    counts: Int32Array.from(gpu.counts),
    usedSlots: new Set<InstanceSlot>(),
  }));
  const targets = gpus.map((g) => g.target);
  const sink = new BestSink(scope.ctx.policy);
  const key = new Key();
  const slices: SliceChoice[] = [];
  const total = new Key();
  total.nodeFree = node.freeSlices;
  total.nodeTotal = Math.max(1, node.totalSlices);
  for (let i = 0; i < scope.request.count; i++) {
    sink.clear();
    facts.forEach((f, j) => {
      evaluateGpu(f, targets[j] as TargetOnModel, scope, sink, key, node.freeSlices, node.totalSlices);
    });
    const best = sink.facts;
    if (best === null) return { group: null, fitted: i };
    const t = best.gpu.tables as GeometryTables;
    slices.push(
      sliceChoice(best.gpu, sink.action, sink.q, sink.start, sink.slot, scope.request.target, sink.key.growth),
    );
    if (i === 0) {
      total.ordinal = sink.key.ordinal;
      total.action = sink.key.action;
      total.start = sink.key.start;
    }
    total.degraded = Math.max(total.degraded, sink.key.degraded);
    total.growth = Math.round((total.growth + sink.key.growth) * 1e9) / 1e9;
    total.leftover += sink.key.leftover;
    total.waste += sink.key.waste;
    // Apply the choice to the scratch state.
    const size = t.sizes[sink.q] as number;
    const m = ((1 << size) - 1) << sink.start;
    if (sink.slot) {
      best.usedSlots?.add(sink.slot);
      best.heldMask |= m;
    } else {
      best.instanceMask |= m;
      best.heldMask |= m;
      best.counts[sink.q] = (best.counts[sink.q] as number) + 1;
      best.computeUsed += t.computeSlices[sink.q] as number;
      if (t.mediaExtensions[sink.q] === 1) best.meTaken = true;
    }
    if (t.mediaExtensions[sink.q] === 1) best.meHeld = true;
  }
  return { group: { node, slices, key: total }, fitted: scope.request.count };
}

// ---- entry points ----

function nodeGpuTargets(
  node: NodeState,
  scope: RequestScope,
  onReject: (gpu: GpuState, code: RejectionCode) => void,
): { gpu: GpuState; target: TargetOnModel }[] {
  const out: { gpu: GpuState; target: TargetOnModel }[] = [];
  for (const gpu of [...node.gpus].sort((a, b) => a.index - b.index)) {
    const code = gpuCheck(gpu, scope);
    if (code) {
      onReject(gpu, code);
      continue;
    }
    const target = scope.target(gpu.tables as GeometryTables);
    if (!target.resolved.ok) {
      onReject(gpu, target.resolved.code);
      continue;
    }
    out.push({ gpu, target });
  }
  return out;
}

function nodesInOrder(view: ClusterView): NodeState[] {
  const seen: NodeState[] = [];
  let last: NodeState | null = null;
  for (const g of orderedGpus(view)) {
    if (g.node !== last) {
      seen.push(g.node);
      last = g.node;
    }
  }
  return seen;
}

/** The decision for a request: the best candidate, or why there is none. */
export function decide(view: ClusterView, request: PlacementRequest, ctx: PlacementContext): PlacementOutcome {
  const scope = new RequestScope(request, ctx);
  const tally = new Int32Array(REJECTION_CODES.length);
  if (request.count > 1) {
    let best: NodeGroup | null = null;
    for (const node of nodesInOrder(view)) {
      const code = nodeCheck(node, scope);
      if (code) {
        bump(tally, code, node.gpus.length);
        continue;
      }
      const gpus = nodeGpuTargets(node, scope, (_, c) => bump(tally, c));
      const { group } = packNode(node, gpus, scope);
      if (!group) {
        bump(tally, "node-too-small");
        continue;
      }
      if (best === null || compareKeys(ctx.policy, group.key, best.key) < 0) best = group;
    }
    if (!best) return summarize(request, tally);
    return {
      ok: true,
      decision: {
        nodeId: best.node.nodeId,
        slices: best.slices,
        score: scoreOf(best.key, best.node.freeSlices, best.node.totalSlices),
      },
    };
  }

  if (ctx.policy === "first-fit") return decideByScan(view, scope, tally);
  return decideIndexed(view, scope, tally);
}

/** Single slice, every GPU in order: the first-fit baseline, and the path that explains a failure. */
function decideByScan(view: ClusterView, scope: RequestScope, tally: Int32Array): PlacementOutcome {
  const ctx = scope.ctx;
  const sink = new BestSink(ctx.policy);
  const key = new Key();
  const facts = factsOf(orderedGpus(view)[0] as GpuState);
  let lastNode: NodeState | null = null;
  let nodeCode: RejectionCode | null = null;
  let lastTables: GeometryTables | null = null;
  let lastTarget: TargetOnModel | null = null;
  for (const gpu of orderedGpus(view)) {
    const node = gpu.node;
    if (node !== lastNode) {
      lastNode = node;
      nodeCode = nodeCheck(node, scope);
    }
    if (nodeCode !== null) {
      bump(tally, nodeCode);
      continue;
    }
    const code = gpuCheck(gpu, scope);
    if (code !== null) {
      bump(tally, code);
      continue;
    }
    if (gpu.tables !== lastTables) {
      lastTables = gpu.tables as GeometryTables;
      lastTarget = scope.target(lastTables);
    }
    const target = lastTarget as TargetOnModel;
    if (!target.resolved.ok) {
      bump(tally, target.resolved.code);
      continue;
    }
    const why = evaluateGpu(fillFacts(facts, gpu), target, scope, sink, key, node.freeSlices, node.totalSlices);
    if (why !== null) bump(tally, why);
    // First fit: nothing later can beat a healthy GPU that offered something.
    if (ctx.policy === "first-fit" && sink.gpu !== null && sink.key.degraded === 0) break;
  }
  return outcomeOf(scope, sink, tally);
}

function outcomeOf(scope: RequestScope, sink: BestSink, tally: Int32Array): PlacementOutcome {
  const gpu = sink.gpu;
  if (gpu === null) return summarize(scope.request, tally);
  const slice = sliceChoice(gpu, sink.action, sink.q, sink.start, sink.slot, scope.request.target, sink.key.growth);
  return {
    ok: true,
    decision: {
      nodeId: slice.nodeId,
      slices: [slice],
      score: scoreOf(sink.key, gpu.node.freeSlices, gpu.node.totalSlices),
    },
  };
}

/** Weights that zero the fragmentation term: best fit scored through the same tables (every loss 0, lowest start). */
const NO_FRAGMENTATION: DemandWeights = Object.freeze({ byKey: new Map<string, number>(), fallback: 0 });

interface IndexGroup {
  readonly tables: GeometryTables;
  readonly gpus: ReadonlySet<GpuState>;
  readonly action: number;
  /** The profile placed (carve) or handed out (device). */
  readonly p: number;
  readonly loss: number;
  readonly leftover: number;
  /** Carve: the start every GPU of the group gets; devices: per GPU. */
  readonly start: number;
  done: boolean;
}

/** Lowest-start free device of profile p on a GPU, or null. */
function freeDeviceOf(gpu: GpuState, p: number): InstanceSlot | null {
  let best: InstanceSlot | null = null;
  for (const s of gpu.slots) {
    if (s.profileIndex !== p || s.leasedBy !== null || s.busy || s.migUuid === null) continue;
    if (best === null || s.start < best.start) best = s;
  }
  return best;
}

/** The view's index sets as groups, each scored once (see `ClusterView.buckets`). */
function indexGroups(view: ClusterView, scope: RequestScope): IndexGroup[] {
  const fragment = scope.ctx.policy === "fragmentation";
  const weights = fragment ? scope.ctx.weights : NO_FRAGMENTATION;
  const req = scope.request.target;
  const groups: IndexGroup[] = [];
  for (const [t, byKey] of view.buckets) {
    const target = scope.target(t);
    if (!target.resolved.ok) continue;
    const q = target.q;
    const carve = bestCarveTable(t, weights, q);
    const size = t.sizes[q] as number;
    for (const [k, set] of byKey) {
      const start = carve.start[k] as number;
      if (start < 0 || set.size === 0) continue;
      groups.push({
        tables: t,
        gpus: set,
        action: ACTION_CARVE,
        p: q,
        loss: carve.loss[k] as number,
        leftover: popcount(k & t.fullMask) - size,
        start,
        done: false,
      });
    }
  }
  for (const [t, byKey] of view.staticDevices) {
    const target = scope.target(t);
    if (!target.resolved.ok) continue;
    for (const [k, set] of byKey) {
      if (set.size === 0) continue;
      const p = k >> 5;
      if (!deviceServes(t, p, target.q, req)) continue;
      const size = t.sizes[p] as number;
      groups.push({
        tables: t,
        gpus: set,
        action: ACTION_DEVICE,
        p,
        loss: fragment ? Math.round((target.vector[p] as number) * size * 1e9) / 1e9 : 0,
        leftover: (k & 31) - size,
        start: -1,
        done: false,
      });
    }
  }
  return groups;
}

/**
 * Single slice through the view's index: irregular GPUs one by one; the
 * index's groups best (loss, leftover) first, looking only at the GPUs of
 * groups that can still beat the best found. Same ranking as the scan (and
 * as Explain); when nothing fits, the scan runs to say why.
 */
function decideIndexed(view: ClusterView, scope: RequestScope, tally: Int32Array): PlacementOutcome {
  const ctx = scope.ctx;
  const gpus = orderedGpus(view); // refreshes ordinals
  if (gpus.length === 0) return summarize(scope.request, tally);
  const sink = new BestSink(ctx.policy);
  const key = new Key();
  const facts = factsOf(gpus[0] as GpuState);
  for (const gpu of view.irregular) {
    if (nodeCheck(gpu.node, scope) !== null || gpuCheck(gpu, scope) !== null) continue;
    const target = scope.target(gpu.tables as GeometryTables);
    if (!target.resolved.ok) continue;
    evaluateGpu(fillFacts(facts, gpu), target, scope, sink, key, gpu.node.freeSlices, gpu.node.totalSlices);
  }

  const groups = indexGroups(view, scope);
  for (;;) {
    // The best remaining (loss, leftover), and every group that ties with it.
    let best: IndexGroup | null = null;
    for (const g of groups) {
      if (!g.done && (best === null || g.loss < best.loss || (g.loss === best.loss && g.leftover < best.leftover))) {
        best = g;
      }
    }
    if (best === null) break;
    const bound = sink.gpu !== null && sink.key.degraded === 0 ? sink.key : null;
    if (bound && (best.loss > bound.growth || (best.loss === bound.growth && best.leftover > bound.leftover))) break;
    const { loss, leftover } = best;
    for (const g of groups) {
      if (g.done || g.loss !== loss || g.leftover !== leftover) continue;
      g.done = true;
      const t = g.tables;
      const compute = t.computeSlices[g.p] as number;
      const waste = wasteMiBOf(t, g.p, scope.request.target);
      for (const gpu of g.gpus) {
        if (g.action === ACTION_CARVE && gpu.computeUsed + compute > t.computeSliceCount) continue;
        if (nodeCheck(gpu.node, scope) !== null || gpuCheck(gpu, scope) !== null) continue;
        const slot = g.action === ACTION_DEVICE ? freeDeviceOf(gpu, g.p) : null;
        key.degraded = gpu.health.state === "healthy" ? 0 : 1;
        key.growth = loss;
        key.leftover = leftover;
        key.nodeFree = gpu.node.freeSlices;
        key.nodeTotal = Math.max(1, gpu.node.totalSlices);
        key.waste = waste;
        key.ordinal = gpu.ordinal;
        key.action = g.action;
        key.start = slot ? slot.start : g.start;
        sink.offer(fillFacts(facts, gpu), g.action, g.p, key.start, slot, key);
      }
    }
  }
  if (sink.gpu === null) return decideByScan(view, scope, tally);
  return outcomeOf(scope, sink, tally);
}

/** `Explain`: every candidate with its score, every rejection with its reason, and the decision. */
export function explain(view: ClusterView, request: PlacementRequest, ctx: PlacementContext): Explanation {
  const scope = new RequestScope(request, ctx);
  const rejections: Rejection[] = [];
  const reject = (node: NodeState, gpu: GpuState | null, code: RejectionCode, detail: string) =>
    rejections.push({ nodeId: node.nodeId, gpuUuid: gpu?.uuid ?? null, gpuIndex: gpu?.index ?? null, code, detail });
  const ranked: { candidate: Candidate; key: Key }[] = [];

  for (const node of nodesInOrder(view)) {
    const code = nodeCheck(node, scope);
    if (code) {
      reject(node, null, code, nodeDetail(code, node, scope));
      continue;
    }
    if (request.count > 1) {
      const gpus = nodeGpuTargets(node, scope, (gpu, c) => reject(node, gpu, c, detailFor(c, gpu, scope)));
      const { group, fitted } = packNode(node, gpus, scope);
      if (!group) {
        reject(node, null, "node-too-small", `only ${fitted} of ${request.count} slices fit on this node`);
        continue;
      }
      ranked.push({
        candidate: {
          nodeId: node.nodeId,
          slices: group.slices,
          score: scoreOf(group.key, node.freeSlices, node.totalSlices),
        },
        key: group.key,
      });
      continue;
    }
    for (const gpu of [...node.gpus].sort((a, b) => a.index - b.index)) {
      const gcode = gpuCheck(gpu, scope);
      if (gcode) {
        reject(node, gpu, gcode, gpuDetail(gcode, gpu, scope));
        continue;
      }
      const target = scope.target(gpu.tables as GeometryTables);
      if (!target.resolved.ok) {
        reject(node, gpu, target.resolved.code, target.resolved.detail);
        continue;
      }
      const sink = new CollectSink();
      const why = evaluateGpu(factsOf(gpu), target, scope, sink, new Key(), node.freeSlices, node.totalSlices);
      if (why) reject(node, gpu, why, detailFor(why, gpu, scope));
      for (const o of sink.options) {
        const slice = sliceChoice(o.facts.gpu, o.action, o.q, o.start, o.slot, request.target, o.key.growth);
        ranked.push({
          candidate: { nodeId: node.nodeId, slices: [slice], score: scoreOf(o.key, node.freeSlices, node.totalSlices) },
          key: o.key,
        });
      }
    }
  }
  ranked.sort((a, b) => compareKeys(ctx.policy, a.key, b.key));
  const candidates = ranked.map((r) => r.candidate);

  const mappings: ModelMapping[] = [];
  const weights: Record<string, number> = {};
  for (const t of view.catalog.all()) {
    const r = resolveTarget(t.geometry, request.target);
    mappings.push({
      model: t.geometry.model,
      profileName: r.ok ? r.profile.name : null,
      waste: r.ok ? r.waste : null,
      detail: r.ok ? null : r.detail,
    });
    if (r.ok) weights[profileClassKey(r.profile)] = weightOf(ctx.weights, profileClassKey(r.profile));
  }
  return {
    request,
    policy: ctx.policy,
    mappings,
    weights,
    candidates,
    rejections,
    decision: candidates[0] ?? null,
  };
}

function detailFor(code: RejectionCode, gpu: GpuState, scope: RequestScope): string {
  const t = gpu.tables;
  const target = t ? scope.target(t) : null;
  const profile = target?.resolved.ok ? target.resolved.profile : null;
  switch (code) {
    case "max-instances":
      return `${profile?.name} already has its maximum of ${profile?.maxInstances} instances on this GPU`;
    case "media-extensions-taken":
      return "another instance already owns the GPU's media extensions (one +me instance per GPU)";
    case "compute-slices":
      return `${gpu.computeUsed} of ${t?.computeSliceCount} compute slices in use; ${profile?.name} needs ${profile?.sliceCount}`;
    case "no-free-placement":
      return `no legal placement of ${profile?.name} (starts ${profile?.placements.join(", ")}) is free`;
    case "no-free-device":
      return gpu.node.dynamicMig
        ? `no free MIG device serves ${targetLabel(scope.request.target)}`
        : `static node: no free MIG device serves ${targetLabel(scope.request.target)} (static nodes do not carve new instances)`;
    case "no-profile":
    case "no-adequate-profile":
      return target && !target.resolved.ok ? target.resolved.detail : code;
    default:
      return gpuDetail(code, gpu, scope);
  }
}
