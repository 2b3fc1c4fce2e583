// The scheduler's cluster view: nodes → GPUs → MIG geometry, instances,
// leases, health, fabric and availability, built only from what agents
// report (snapshots, events, registrations) plus the scheduler's own
// reservations that agents have not reported yet. It is a cache: a restart
// rebuilds it from the agents.
//
// The view is a plain mutable structure changed only through the functions
// in this file; placement reads it without changing it. GPU state carries
// derived bitmasks (bit i = memory slice i) recomputed after every change,
// so that placement over 10,000 GPUs reads numbers, not instance lists.

import { TesseraError } from "../errors.js";
import { placementMask, popcount } from "../mig/geometry.js";
import type { GpuGeometry, GpuInstanceState, Placement } from "../mig/types.js";
import { lookupXid } from "../telemetry/xid-catalog.js";
import { GeometryCatalog, type GeometryTables } from "./geometry-tables.js";

// ---- what agents report (mirrors tessera.v1 Node, Gpu, GpuNicAffinity, Lease; no protobuf here) ----

export type GpuHealthState = "healthy" | "degraded" | "unhealthy" | "unknown";

export interface GpuHealthReport {
  readonly state: GpuHealthState;
  /** Why the state is not healthy, one line each. */
  readonly reasons: readonly string[];
}

/** `GpuNicAffinity`: the GPU's nearest healthy NIC and its PCIe distance in NCCL's names. */
export interface NicAffinityReport {
  readonly gpuUuid: string;
  /** `mlx5_0`; empty when no healthy NIC is known. */
  readonly nearestNic: string;
  /** PIX, PXB, PHB, NODE or SYS; empty when unknown. */
  readonly distance: string;
  readonly rdmaDegraded: boolean;
}

export interface GpuReport {
  readonly index: number;
  readonly uuid: string;
  readonly model: string;
  readonly memoryTotalMiB: number;
  readonly health: GpuHealthReport;
  /** NVML answers GPU_IS_LOST. */
  readonly lost: boolean;
  readonly migEnabled: boolean;
  /** Null when the GPU is not MIG-capable. */
  readonly geometry: GpuGeometry | null;
  readonly instances: readonly GpuInstanceState[];
}

export interface NodeReport {
  readonly nodeId: string;
  /** The NVML library is Tessera's simulator: refused unless a request allows it. */
  readonly simulated: boolean;
  /** Allocate may carve new GPU instances; static nodes only hand out existing MIG devices. */
  readonly dynamicMig: boolean;
  readonly labels: Readonly<Record<string, string>>;
  readonly gpus: readonly GpuReport[];
  readonly topology: readonly NicAffinityReport[];
  /** GPU indexes NVML could not open, with why: reported, never placed on. */
  readonly unavailableGpus: readonly { readonly index: number; readonly error: string }[];
}

/** A lease from an agent's lease table (`tessera.v1.Lease`). */
export interface LeaseReport {
  readonly workloadId: string;
  readonly tenant: string;
  readonly gpuIndex: number;
  readonly gpuUuid: string;
  /** Null for a whole-GPU lease. */
  readonly migUuid: string | null;
  readonly gpuInstanceId: number | null;
  readonly computeInstanceId: number | null;
  readonly profileName: string;
  readonly placement: Placement | null;
  readonly createdAtMs: number;
  readonly instanceCreated: boolean;
}

export interface NodeSnapshotReport {
  readonly node: NodeReport;
  readonly leases: readonly LeaseReport[];
  /** The last event sequence number the snapshot includes. */
  readonly lastSeq: number;
}

// ---- the view ----

/**
 * Where a lease record comes from: the agent's lease table, or the
 * scheduler's overlay: `pending` (reserved, agent not asked or not answered),
 * `confirmed` (agent said yes, its snapshots do not show it yet), `in-doubt`
 * (the agent call failed or timed out and the release did not go through
 * either: the slice stays held until a snapshot shows the truth or the
 * overlay expires).
 */
export type LeaseSource = "agent" | "pending" | "confirmed" | "in-doubt";

export interface LeaseRecord {
  /** The agent's workload id: one slice (`groupId` itself when the request had count 1). */
  readonly workloadId: string;
  /** The request's workload id. */
  readonly groupId: string;
  readonly sliceIndex: number;
  readonly tenant: string;
  readonly nodeId: string;
  readonly gpuUuid: string;
  readonly gpuIndex: number;
  readonly migUuid: string | null;
  readonly gpuInstanceId: number | null;
  readonly computeInstanceId: number | null;
  readonly profileId: number | null;
  readonly profileName: string;
  /** Null for a whole-GPU lease. */
  readonly placement: Placement | null;
  readonly computeSlices: number;
  readonly memorySlices: number;
  readonly createdAtMs: number;
  readonly instanceCreated: boolean;
  readonly source: LeaseSource;
  /** When the record got its current source (overlays expire from here). */
  readonly sinceMs: number;
}

/** A GPU instance, existing or reserved, on a GPU of the view. */
export interface InstanceSlot {
  readonly giId: number | null;
  readonly ciId: number | null;
  /** Index into the GPU's geometry tables, −1 for a profile the geometry does not list. */
  readonly profileIndex: number;
  readonly profileId: number;
  readonly start: number;
  readonly size: number;
  /** The one MIG device of the instance, null when it has none or several compute instances. */
  readonly migUuid: string | null;
  /** Processes run on it without a lease (someone uses it outside Tessera). */
  readonly busy: boolean;
  readonly leasedBy: string | null;
  /** Created by a scheduler reservation, not (yet) seen in a snapshot. */
  readonly reserved: boolean;
}

export interface NodeState {
  readonly nodeId: string;
  address: string | null;
  registered: boolean;
  /** Registration lease: the agent renews it; past it the node is unavailable. */
  leaseExpiresAtMs: number;
  hasSnapshot: boolean;
  /**
   * Set while the scheduler has no live stream from the agent (why): what the view holds of the
   * node may be out of date, so it takes no new work until a fresh snapshot reconciles it.
   */
  staleReason: string | null;
  snapshotAtMs: number;
  lastSeq: number;
  simulated: boolean;
  dynamicMig: boolean;
  labels: Readonly<Record<string, string>>;
  gpus: GpuState[];
  unavailableGpus: readonly { readonly index: number; readonly error: string }[];
  readonly agentLeaseIds: Set<string>;
  readonly overlayIds: Set<string>;
  /** Free memory slices over the node's schedulable GPUs (node packing prefers fuller nodes). */
  freeSlices: number;
  totalSlices: number;
}

export interface GpuState {
  readonly node: NodeState;
  /** Position in `orderedGpus` (node id, then GPU index): the final tie-break. */
  ordinal: number;
  readonly uuid: string;
  index: number;
  model: string;
  memoryTotalMiB: number;
  tables: GeometryTables | null;
  health: GpuHealthReport;
  lost: boolean;
  migEnabled: boolean;
  /** A critical XID holds the GPU out of placement until then. */
  xidHoldUntilMs: number;
  xidReason: string | null;
  nic: NicAffinityReport | null;
  slots: InstanceSlot[];
  // Derived by recomputeGpu:
  /** Slices any instance (existing or reserved) occupies: where nothing new can be carved. */
  instanceMask: number;
  /** Slices not reclaimable: leased, reserved, busy or not a single MIG device. Fragmentation is measured on the rest. */
  heldMask: number;
  /** Instances per profile index. */
  counts: Int32Array;
  meTaken: boolean;
  meHeld: boolean;
  computeUsed: number;
  freeDevices: number;
  freeDeviceSlices: number;
  /** Bit p: a free device of profile index p exists (placement skips GPUs without a wanted one). */
  freeDeviceProfiles: number;
  wholeLeasedBy: string | null;
  freeSlices: number;
  totalSlices: number;
  /** The index sets holding the GPU now, and a number naming that position (see `reindexGpu`). */
  indexSets: Set<GpuState>[];
  indexSignature: number;
  indexTables: GeometryTables | null;
}

export interface ClusterOptions {
  /** How long a confirmed or in-doubt reservation outlives snapshots that do not show it. */
  readonly overlayTtlMs: number;
  /** How long a critical XID keeps a GPU out of placement. */
  readonly xidHoldMs: number;
  /** Registration lease when a registration names none. */
  readonly nodeLeaseTtlMs: number;
  /**
   * The longest an instance destroyed with its lease is held as "being destroyed" while snapshots
   * still list it: an agent's lease table changes at once, its instance list at its next sweep,
   * and the agent decides on that instance list. Until a snapshot stops listing the instance, it
   * is neither a free device nor free slices; past this, what the agent reports is believed.
   * 0 (the default) frees them at once: right for an AgentPort whose snapshots never lag (the
   * in-process fleet); the scheduler daemon sets it.
   */
  readonly tombstoneTtlMs: number;
}

export const DEFAULT_CLUSTER_OPTIONS: ClusterOptions = {
  overlayTtlMs: 30_000,
  xidHoldMs: 10 * 60_000,
  nodeLeaseTtlMs: 15_000,
  tombstoneTtlMs: 0,
};

export interface Tombstone {
  readonly gpuUuid: string;
  readonly untilMs: number;
}

export interface SliceUsage {
  readonly computeSlices: number;
  readonly memorySlices: number;
}

export interface ClusterView {
  readonly options: ClusterOptions;
  readonly catalog: GeometryCatalog;
  readonly nodes: Map<string, NodeState>;
  readonly gpuByUuid: Map<string, GpuState>;
  /** Every lease, from agents and from the overlay, by the agent's workload id. */
  readonly leases: Map<string, LeaseRecord>;
  /** Slice ids by request workload id (count > 1 holds several). */
  readonly groups: Map<string, Set<string>>;
  readonly tenantUsage: Map<string, SliceUsage>;
  /** Bumped on every change (WatchCluster can diff on it). */
  version: number;
  /** Lease ids two nodes both reported, latest first: reported, never silently merged. */
  readonly conflicts: string[];
  /** Instances destroyed with their lease (by MIG UUID), held until a snapshot stops listing them. */
  readonly tombstones: Map<string, Tombstone>;
  gpus: GpuState[];
  gpuOrderDirty: boolean;
  /**
   * The placement index (maintained by `recomputeGpu`). Placement scores a
   * set of GPUs at once where their scores can only differ in the later
   * keys (node fullness, order), and looks only at the sets that can still
   * beat the best found:
   * - `buckets`: "regular" GPUs (dynamic node, no free existing device,
   *   tabulated geometry) by model and `(meTaken << M) | freeMask`;
   * - `staticDevices`: static-node GPUs by model and `profileIndex * 32 +
   *   freeDeviceSlices`, one entry per profile of which they have a free device;
   * - `irregular`: every other GPU that can take work (dynamic GPUs with idle
   *   devices, untabulated geometries), scored one by one.
   * GPUs that cannot take work (lost, unhealthy, MIG off, whole-GPU lease,
   * static without a free device) are in none of them.
   */
  readonly buckets: Map<GeometryTables, Map<number, Set<GpuState>>>;
  readonly staticDevices: Map<GeometryTables, Map<number, Set<GpuState>>>;
  readonly irregular: Set<GpuState>;
}

export function createClusterView(options: Partial<ClusterOptions> = {}): ClusterView {
  return {
    options: { ...DEFAULT_CLUSTER_OPTIONS, ...options },
    catalog: new GeometryCatalog(),
    nodes: new Map(),
    gpuByUuid: new Map(),
    leases: new Map(),
    groups: new Map(),
    tenantUsage: new Map(),
    version: 0,
    conflicts: [],
    tombstones: new Map(),
    gpus: [],
    gpuOrderDirty: false,
    buckets: new Map(),
    staticDevices: new Map(),
    irregular: new Set(),
  };
}

// ---- slice ids: one agent lease per slice of a count > 1 request ----

/**
 * Separates a request's workload id from the slice number in agents' workload
 * ids; not allowed in request ids. One of the characters the agent accepts in
 * a workload id (src/rpc/validate.ts), so `job-7+0`, `job-7+1` are valid there.
 */
export const SLICE_SEPARATOR = "+";

export function sliceWorkloadId(groupId: string, sliceIndex: number, count: number): string {
  return count === 1 ? groupId : `${groupId}${SLICE_SEPARATOR}${sliceIndex}`;
}

export function parseSliceWorkloadId(workloadId: string): { groupId: string; sliceIndex: number } {
  const at = workloadId.lastIndexOf(SLICE_SEPARATOR);
  if (at > 0) {
    const n = workloadId.slice(at + 1);
    if (/^\d+$/.test(n)) return { groupId: workloadId.slice(0, at), sliceIndex: Number.parseInt(n, 10) };
  }
  return { groupId: workloadId, sliceIndex: 0 };
}

// ---- reads ----

export function nodeAvailable(node: NodeState, nowMs: number): boolean {
  return node.registered && node.hasSnapshot && node.staleReason === null && nowMs <= node.leaseExpiresAtMs;
}

/** Why a node takes no new work, or null. */
export function nodeUnavailableReason(node: NodeState, nowMs: number): string | null {
  if (!node.registered) return "agent has not registered";
  if (!node.hasSnapshot) return "no snapshot from the agent yet";
  if (nowMs > node.leaseExpiresAtMs) {
    return `agent stopped renewing: registration lease expired ${Math.round(nowMs - node.leaseExpiresAtMs)} ms ago`;
  }
  if (node.staleReason !== null) return `no live stream from the agent (${node.staleReason}): waiting to reconcile`;
  return null;
}

/** The agent's stream broke: the node takes no new work until its next snapshot. */
export function markNodeStale(view: ClusterView, nodeId: string, why: string): void {
  const node = view.nodes.get(nodeId);
  if (!node || node.staleReason === why) return;
  node.staleReason = why;
  view.version++;
}

/** GPUs in placement order: node id, then GPU index. */
export function orderedGpus(view: ClusterView): readonly GpuState[] {
  if (view.gpuOrderDirty) {
    const nodes = [...view.nodes.values()].sort((a, b) => (a.nodeId < b.nodeId ? -1 : a.nodeId > b.nodeId ? 1 : 0));
    view.gpus = nodes.flatMap((n) => [...n.gpus].sort((a, b) => a.index - b.index));
    view.gpus.forEach((g, i) => {
      g.ordinal = i;
    });
    view.gpuOrderDirty = false;
  }
  return view.gpus;
}

export function tenantUsage(view: ClusterView, tenant: string): SliceUsage {
  return view.tenantUsage.get(tenant) ?? { computeSlices: 0, memorySlices: 0 };
}

/** The slice records of a request (count 1: one), in slice order. */
export function leasesOfGroup(view: ClusterView, groupId: string): LeaseRecord[] {
  const ids = view.groups.get(groupId);
  if (!ids) return [];
  return [...ids]
    .map((id) => view.leases.get(id))
    .filter((r): r is LeaseRecord => r !== undefined)
    .sort((a, b) => a.sliceIndex - b.sliceIndex);
}

// ---- lease bookkeeping (records, groups, tenant usage) ----

function adjustUsage(view: ClusterView, rec: LeaseRecord, sign: 1 | -1): void {
  const u = tenantUsage(view, rec.tenant);
  const next = {
    computeSlices: u.computeSlices + sign * rec.computeSlices,
    memorySlices: u.memorySlices + sign * rec.memorySlices,
  };
  if (next.computeSlices === 0 && next.memorySlices === 0) view.tenantUsage.delete(rec.tenant);
  else view.tenantUsage.set(rec.tenant, next);
}

function putRecord(view: ClusterView, rec: LeaseRecord): void {
  const old = view.leases.get(rec.workloadId);
  if (old) dropRecord(view, old.workloadId);
  view.leases.set(rec.workloadId, rec);
  let group = view.groups.get(rec.groupId);
  if (!group) {
    group = new Set();
    view.groups.set(rec.groupId, group);
  }
  group.add(rec.workloadId);
  adjustUsage(view, rec, 1);
}

function dropRecord(view: ClusterView, workloadId: string): LeaseRecord | undefined {
  const rec = view.leases.get(workloadId);
  if (!rec) return undefined;
  view.leases.delete(workloadId);
  const group = view.groups.get(rec.groupId);
  group?.delete(workloadId);
  if (group && group.size === 0) view.groups.delete(rec.groupId);
  adjustUsage(view, rec, -1);
  const node = view.nodes.get(rec.nodeId);
  node?.agentLeaseIds.delete(workloadId);
  node?.overlayIds.delete(workloadId);
  return rec;
}

// ---- derived GPU state ----

function emptyGpu(node: NodeState, uuid: string): GpuState {
  return {
    node,
    ordinal: 0,
    uuid,
    index: 0,
    model: "",
    memoryTotalMiB: 0,
    tables: null,
    health: { state: "unknown", reasons: [] },
    lost: false,
    migEnabled: false,
    xidHoldUntilMs: Number.NEGATIVE_INFINITY,
    xidReason: null,
    nic: null,
    slots: [],
    instanceMask: 0,
    heldMask: 0,
    counts: new Int32Array(0),
    meTaken: false,
    meHeld: false,
    computeUsed: 0,
    freeDevices: 0,
    freeDeviceSlices: 0,
    freeDeviceProfiles: 0,
    wholeLeasedBy: null,
    freeSlices: 0,
    totalSlices: 0,
    indexSets: [],
    indexSignature: NOT_INDEXED,
    indexTables: null,
  };
}

/** Whether the GPU could take work at all (health, MIG), ignoring requests and time. */
function gpuServes(gpu: GpuState): boolean {
  return gpu.tables !== null && gpu.migEnabled && !gpu.lost && gpu.health.state !== "unhealthy";
}

/** Recomputes the GPU's masks and counters from its slots, the node's free-slice totals, and the GPU's place in the index. */
export function recomputeGpu(view: ClusterView, gpu: GpuState): void {
  const t = gpu.tables;
  const counts = t ? new Int32Array(t.keys.length) : new Int32Array(0);
  let instanceMask = 0;
  let heldMask = 0;
  let meTaken = false;
  let meHeld = false;
  let computeUsed = 0;
  let freeDevices = 0;
  let freeDeviceSlices = 0;
  let freeDeviceProfiles = 0;
  for (const s of gpu.slots) {
    const m = placementMask(s.start, s.size);
    instanceMask |= m;
    const media = t !== null && s.profileIndex >= 0 && t.mediaExtensions[s.profileIndex] === 1;
    if (t !== null && s.profileIndex >= 0) {
      counts[s.profileIndex] = (counts[s.profileIndex] as number) + 1;
      computeUsed += t.computeSlices[s.profileIndex] as number;
    } else {
      // An instance of a profile the geometry does not list: assume it takes compute in proportion to memory.
      computeUsed += s.size;
    }
    if (media) meTaken = true;
    const freeDevice = s.leasedBy === null && !s.busy && s.migUuid !== null && s.profileIndex >= 0;
    if (freeDevice) {
      freeDevices++;
      freeDeviceSlices += s.size;
      freeDeviceProfiles |= 1 << s.profileIndex;
    } else {
      heldMask |= m;
      if (media) meHeld = true;
    }
  }
  const full = t ? t.fullMask : 0;
  if (gpu.wholeLeasedBy !== null) heldMask = full;
  gpu.counts = counts;
  gpu.instanceMask = instanceMask;
  gpu.heldMask = heldMask;
  gpu.meTaken = meTaken;
  gpu.meHeld = meHeld;
  gpu.computeUsed = computeUsed;
  gpu.freeDevices = gpu.wholeLeasedBy === null ? freeDevices : 0;
  gpu.freeDeviceSlices = gpu.wholeLeasedBy === null ? freeDeviceSlices : 0;
  gpu.freeDeviceProfiles = gpu.wholeLeasedBy === null ? freeDeviceProfiles : 0;
  const node = gpu.node;
  node.freeSlices -= gpu.freeSlices;
  node.totalSlices -= gpu.totalSlices;
  if (gpuServes(gpu) && t) {
    gpu.totalSlices = t.memorySliceCount;
    gpu.freeSlices = node.dynamicMig ? popcount(full & ~heldMask) : gpu.freeDeviceSlices;
  } else {
    gpu.totalSlices = 0;
    gpu.freeSlices = 0;
  }
  node.freeSlices += gpu.freeSlices;
  node.totalSlices += gpu.totalSlices;
  reindexGpu(view, gpu);
}

const NOT_INDEXED = -2;
const IRREGULAR = -1;
/** Static signatures start here, above every bucket key (masks of at most 16 slices plus the me bit). */
const STATIC_BASE = 1 << 20;

function unindexGpu(gpu: GpuState): void {
  for (const set of gpu.indexSets) set.delete(gpu);
  gpu.indexSets = [];
  gpu.indexSignature = NOT_INDEXED;
  gpu.indexTables = null;
}

function indexSet(index: Map<GeometryTables, Map<number, Set<GpuState>>>, t: GeometryTables, key: number) {
  let byKey = index.get(t);
  if (!byKey) {
    byKey = new Map();
    index.set(t, byKey);
  }
  let set = byKey.get(key);
  if (!set) {
    set = new Set();
    byKey.set(key, set);
  }
  return set;
}

/** Places the GPU in the index its state calls for (see `ClusterView.buckets`). */
function reindexGpu(view: ClusterView, gpu: GpuState): void {
  const t = gpu.tables;
  let signature = NOT_INDEXED;
  let staticProfiles = 0;
  if (t !== null && gpuServes(gpu) && gpu.wholeLeasedBy === null) {
    if (!gpu.node.dynamicMig) {
      for (const s of gpu.slots) {
        if (s.leasedBy === null && !s.busy && s.migUuid !== null && s.profileIndex >= 0) {
          staticProfiles |= 1 << s.profileIndex;
        }
      }
      if (staticProfiles !== 0 && t.keys.length <= 20) {
        signature = STATIC_BASE + staticProfiles * 32 + gpu.freeDeviceSlices;
      } else if (staticProfiles !== 0) signature = IRREGULAR;
    } else if (t.tabulated && gpu.freeDevices === 0 && gpu.heldMask === gpu.instanceMask) {
      signature = ((gpu.meTaken ? 1 : 0) << t.memorySliceCount) | (t.fullMask & ~gpu.instanceMask);
    } else {
      signature = IRREGULAR;
    }
  }
  if (signature === gpu.indexSignature && t === gpu.indexTables) return;
  unindexGpu(gpu);
  gpu.indexSignature = signature;
  gpu.indexTables = t;
  if (signature === NOT_INDEXED || t === null) return;
  if (signature === IRREGULAR) {
    view.irregular.add(gpu);
    gpu.indexSets.push(view.irregular);
  } else if (signature < STATIC_BASE) {
    const set = indexSet(view.buckets, t, signature);
    set.add(gpu);
    gpu.indexSets.push(set);
  } else {
    for (let p = 0; p < t.keys.length; p++) {
      if ((staticProfiles & (1 << p)) === 0) continue;
      const set = indexSet(view.staticDevices, t, p * 32 + gpu.freeDeviceSlices);
      set.add(gpu);
      gpu.indexSets.push(set);
    }
  }
}

function slotFromInstance(t: GeometryTables | null, gi: GpuInstanceState): InstanceSlot {
  const only = gi.computeInstances.length === 1 ? gi.computeInstances[0] : undefined;
  return {
    giId: gi.giId,
    ciId: only ? only.ciId : null,
    profileIndex: t?.indexById.get(gi.profileId) ?? -1,
    profileId: gi.profileId,
    start: gi.placement.start,
    size: gi.placement.size,
    migUuid: only ? only.uuid : null,
    busy: gi.computeInstances.some((ci) => ci.processIds.length > 0),
    leasedBy: null,
    reserved: false,
  };
}

/** Marks the slot a lease record holds (adding one when no instance matches), or the whole GPU. */
function attachLease(gpu: GpuState, rec: LeaseRecord): void {
  if (rec.placement === null && rec.migUuid === null) {
    gpu.wholeLeasedBy = rec.workloadId;
    return;
  }
  let i = rec.migUuid === null ? -1 : gpu.slots.findIndex((s) => s.migUuid === rec.migUuid);
  if (i < 0 && rec.placement) {
    const { start } = rec.placement;
    i = gpu.slots.findIndex(
      (s) => s.start === start && s.leasedBy === null && (rec.profileId === null || s.profileId === rec.profileId),
    );
  }
  const slot = gpu.slots[i];
  if (slot) {
    gpu.slots[i] = { ...slot, leasedBy: rec.workloadId, migUuid: slot.migUuid ?? rec.migUuid };
    return;
  }
  if (!rec.placement) return;
  // A lease on an instance the snapshot does not list (or a reservation not created yet):
  // hold its slices anyway, the conservative reading.
  gpu.slots.push({
    giId: rec.gpuInstanceId,
    ciId: rec.computeInstanceId,
    profileIndex: rec.profileId === null ? -1 : (gpu.tables?.indexById.get(rec.profileId) ?? -1),
    profileId: rec.profileId ?? -1,
    start: rec.placement.start,
    size: rec.placement.size,
    migUuid: rec.migUuid,
    busy: false,
    leasedBy: rec.workloadId,
    reserved: rec.source !== "agent",
  });
}

/** Frees what a record held on its GPU; an instance the scheduler or agent created for it goes away. */
function detachLease(gpu: GpuState, rec: LeaseRecord, destroying: boolean): void {
  if (gpu.wholeLeasedBy === rec.workloadId) gpu.wholeLeasedBy = null;
  const i = gpu.slots.findIndex((s) => s.leasedBy === rec.workloadId);
  const slot = gpu.slots[i];
  if (!slot) return;
  // The agent destroyed it, but its instance list may not say so yet: hold it, never offer it.
  if (destroying) gpu.slots[i] = { ...slot, leasedBy: null, busy: true, reserved: false };
  else if (slot.reserved || rec.instanceCreated) gpu.slots.splice(i, 1);
  else gpu.slots[i] = { ...slot, leasedBy: null };
}

function profileSlices(gpu: GpuState | undefined, profileId: number | null, placement: Placement | null) {
  const t = gpu?.tables;
  const pi = profileId === null || !t ? -1 : (t.indexById.get(profileId) ?? -1);
  if (t && pi >= 0) return { computeSlices: t.computeSlices[pi] as number, memorySlices: t.sizes[pi] as number };
  if (placement) return { computeSlices: placement.size, memorySlices: placement.size };
  // A whole GPU.
  return { computeSlices: t?.computeSliceCount ?? 0, memorySlices: t?.memorySliceCount ?? 0 };
}

// ---- updates from agents ----

function ensureNode(view: ClusterView, nodeId: string): NodeState {
  let node = view.nodes.get(nodeId);
  if (!node) {
    node = {
      nodeId,
      address: null,
      registered: false,
      leaseExpiresAtMs: Number.NEGATIVE_INFINITY,
      hasSnapshot: false,
      staleReason: null,
      snapshotAtMs: Number.NEGATIVE_INFINITY,
      lastSeq: 0,
      simulated: false,
      dynamicMig: false,
      labels: {},
      gpus: [],
      unavailableGpus: [],
      agentLeaseIds: new Set(),
      overlayIds: new Set(),
      freeSlices: 0,
      totalSlices: 0,
    };
    view.nodes.set(nodeId, node);
    view.gpuOrderDirty = true;
  }
  return node;
}

/** `RegisterNode`: an agent announces itself or renews; returns when its registration lease expires. */
export function registerNode(
  view: ClusterView,
  registration: { readonly nodeId: string; readonly address: string; readonly leaseTtlMs?: number },
  nowMs: number,
): { readonly leaseExpiresAtMs: number; readonly firstRegistration: boolean } {
  const node = ensureNode(view, registration.nodeId);
  const first = !node.registered;
  node.registered = true;
  node.address = registration.address;
  node.leaseExpiresAtMs = nowMs + (registration.leaseTtlMs ?? view.options.nodeLeaseTtlMs);
  view.version++;
  return { leaseExpiresAtMs: node.leaseExpiresAtMs, firstRegistration: first };
}

/** Nodes whose registration lease expired at `nowMs`: they keep their leases in the view, they take no new work. */
export function expiredNodes(view: ClusterView, nowMs: number): NodeState[] {
  return [...view.nodes.values()].filter((n) => n.registered && nowMs > n.leaseExpiresAtMs);
}

function leaseRecordFromReport(nodeId: string, l: LeaseReport, gpu: GpuState | undefined, nowMs: number) {
  const { groupId, sliceIndex } = parseSliceWorkloadId(l.workloadId);
  let profileId: number | null = null;
  if (gpu?.tables && l.placement) {
    const byName = gpu.tables.geometry.profiles.find((p) => p.name === l.profileName);
    if (byName) profileId = byName.id;
  }
  const slices = profileSlices(gpu, profileId, l.placement);
  const rec: LeaseRecord = {
    workloadId: l.workloadId,
    groupId,
    sliceIndex,
    tenant: l.tenant,
    nodeId,
    gpuUuid: l.gpuUuid,
    gpuIndex: l.gpuIndex,
    migUuid: l.migUuid,
    gpuInstanceId: l.gpuInstanceId,
    computeInstanceId: l.computeInstanceId,
    profileId,
    profileName: l.profileName,
    placement: l.placement,
    computeSlices: slices.computeSlices,
    memorySlices: slices.memorySlices,
    createdAtMs: l.createdAtMs,
    instanceCreated: l.instanceCreated,
    source: "agent",
    sinceMs: nowMs,
  };
  return rec;
}

/**
 * Replaces what the view knows of one node with its agent's snapshot, then
 * lays the scheduler's own reservations for that node back on top: a
 * reservation the snapshot shows is adopted (now the agent's), one it does
 * not show stays until confirmed/failed (pending) or until the overlay TTL.
 */
export function applyNodeSnapshot(view: ClusterView, snapshot: NodeSnapshotReport, nowMs: number): void {
  const report = snapshot.node;
  const node = ensureNode(view, report.nodeId);
  node.hasSnapshot = true;
  node.staleReason = null;
  node.snapshotAtMs = nowMs;
  node.lastSeq = snapshot.lastSeq;
  node.simulated = report.simulated;
  node.dynamicMig = report.dynamicMig;
  node.labels = { ...report.labels };
  node.unavailableGpus = report.unavailableGpus;

  if (view.tombstones.size > 0) {
    for (const [uuid, t] of view.tombstones) if (t.untilMs <= nowMs) view.tombstones.delete(uuid);
  }
  const listed = new Set<string>();
  const previous = new Map(node.gpus.map((g) => [g.uuid, g]));
  const nics = new Map(report.topology.map((t) => [t.gpuUuid, t]));
  const gpus: GpuState[] = [];
  let orderChanged = previous.size !== report.gpus.length;
  for (const r of report.gpus) {
    const owner = view.gpuByUuid.get(r.uuid);
    if (owner && owner.node !== node) {
      // GPU UUIDs are unique; two nodes claiming one (a cloned host, a misconfigured agent)
      // would route allocations to the wrong node. The first claim keeps it; this one is reported.
      const conflict = `GPU ${r.uuid}: reported by ${owner.node.nodeId} and ${node.nodeId}; kept on ${owner.node.nodeId}`;
      if (view.conflicts[0] !== conflict) {
        view.conflicts.unshift(conflict);
        view.conflicts.length = Math.min(view.conflicts.length, 100);
      }
      continue;
    }
    let gpu = previous.get(r.uuid);
    if (!gpu) {
      gpu = emptyGpu(node, r.uuid);
      orderChanged = true;
    } else if (gpu.index !== r.index) orderChanged = true;
    const tables = r.geometry ? view.catalog.intern(r.geometry) : null;
    gpu.index = r.index;
    gpu.model = r.model;
    gpu.memoryTotalMiB = r.memoryTotalMiB;
    gpu.tables = tables;
    gpu.health = r.health;
    gpu.lost = r.lost;
    gpu.migEnabled = r.migEnabled;
    gpu.nic = nics.get(r.uuid) ?? null;
    gpu.slots = r.instances.map((gi) => {
      const slot = slotFromInstance(tables, gi);
      if (view.tombstones.size === 0 || slot.migUuid === null || !view.tombstones.has(slot.migUuid)) return slot;
      listed.add(slot.migUuid);
      return { ...slot, busy: true };
    });
    gpu.wholeLeasedBy = null;
    gpus.push(gpu);
  }
  for (const old of previous.values()) {
    if (!gpus.includes(old)) {
      // A GPU that left the node no longer counts toward its free slices.
      node.freeSlices -= old.freeSlices;
      node.totalSlices -= old.totalSlices;
      view.gpuByUuid.delete(old.uuid);
      unindexGpu(old);
    }
  }
  node.gpus = gpus;
  for (const g of gpus) view.gpuByUuid.set(g.uuid, g);
  if (view.tombstones.size > 0) {
    // An instance the node's snapshot no longer lists is gone: its slices are free.
    const mine = new Set(gpus.map((g) => g.uuid));
    for (const [uuid, t] of view.tombstones) if (mine.has(t.gpuUuid) && !listed.has(uuid)) view.tombstones.delete(uuid);
  }
  if (orderChanged) view.gpuOrderDirty = true;

  // The agent's lease table replaces what it said before.
  for (const id of [...node.agentLeaseIds]) {
    const rec = view.leases.get(id);
    if (rec?.source === "agent" && rec.nodeId === node.nodeId) dropRecord(view, id);
  }
  node.agentLeaseIds.clear();
  const byUuid = new Map(gpus.map((g) => [g.uuid, g]));
  for (const l of snapshot.leases) {
    const other = view.leases.get(l.workloadId);
    if (other && other.nodeId !== node.nodeId && other.source === "agent") {
      view.conflicts.unshift(`${l.workloadId}: leased on ${other.nodeId} and ${node.nodeId}`);
      view.conflicts.length = Math.min(view.conflicts.length, 100);
    }
    if (other && other.nodeId === node.nodeId) node.overlayIds.delete(l.workloadId);
    const gpu = byUuid.get(l.gpuUuid);
    const rec = leaseRecordFromReport(node.nodeId, l, gpu, nowMs);
    putRecord(view, rec);
    node.agentLeaseIds.add(rec.workloadId);
    if (gpu) attachLease(gpu, rec);
  }

  for (const id of [...node.overlayIds]) {
    const rec = view.leases.get(id);
    if (!rec || rec.source === "agent") {
      node.overlayIds.delete(id);
      continue;
    }
    const expired = rec.source !== "pending" && nowMs - rec.sinceMs > view.options.overlayTtlMs;
    if (expired) {
      dropRecord(view, id);
      continue;
    }
    const gpu = byUuid.get(rec.gpuUuid);
    if (gpu) attachLease(gpu, rec);
  }
  for (const g of gpus) recomputeGpu(view, g);
  view.version++;
}

/** A lease change event from an agent's event stream (`LeaseDetail`). */
export function applyLeaseEvent(
  view: ClusterView,
  nodeId: string,
  event: {
    readonly workloadId: string;
    readonly change: "allocated" | "released" | "lost";
    readonly deviceUuid: string;
  },
  nowMs: number,
): void {
  const rec = view.leases.get(event.workloadId);
  if (!rec || rec.nodeId !== nodeId) return;
  if (event.change === "allocated") {
    // Details (instance ids) come with the next snapshot; a reservation the agent made is at least confirmed.
    if (rec.source === "pending" || rec.source === "in-doubt") {
      view.leases.set(rec.workloadId, { ...rec, source: "confirmed", sinceMs: nowMs });
      view.version++;
    }
    return;
  }
  removeLease(view, event.workloadId, nowMs);
}

/** Health from a snapshot or a health event (`HealthDetail`). */
export function applyGpuHealth(view: ClusterView, gpuUuid: string, health: GpuHealthReport): void {
  const gpu = view.gpuByUuid.get(gpuUuid);
  if (!gpu) return;
  gpu.health = health;
  recomputeGpu(view, gpu);
  view.version++;
}

/** An XID event: a fatal one (telemetry/xid-catalog) holds the GPU out of placement for `xidHoldMs`. */
export function applyXid(view: ClusterView, gpuUuid: string, code: number, atMs: number): boolean {
  const gpu = view.gpuByUuid.get(gpuUuid);
  if (!gpu) return false;
  const entry = lookupXid(code);
  if (entry.severity !== "fatal") return false;
  gpu.xidHoldUntilMs = Math.max(gpu.xidHoldUntilMs, atMs + view.options.xidHoldMs);
  gpu.xidReason = `XID ${code} (${entry.mnemonic}: ${entry.description})`;
  view.version++;
  return true;
}

export function applyGpuLost(view: ClusterView, gpuUuid: string): void {
  const gpu = view.gpuByUuid.get(gpuUuid);
  if (!gpu) return;
  gpu.lost = true;
  recomputeGpu(view, gpu);
  view.version++;
}

// ---- the scheduler's own changes: reservations and releases ----

/** A reservation named slices that are not free: a decision and its reservation were not made in one turn (a bug). */
export class ReservationConflictError extends TesseraError {
  constructor(message: string) {
    super("TESSERA_RESERVATION_CONFLICT", message);
  }
}

export interface SliceReservation {
  readonly gpuUuid: string;
  readonly profileId: number;
  readonly profileName: string;
  readonly placement: Placement;
  /** Set when the slice is an existing MIG device; null when a new instance is carved. */
  readonly migUuid: string | null;
  readonly gpuInstanceId: number | null;
  readonly computeInstanceId: number | null;
}

/**
 * Holds slices for a request before the agent is asked, so that no later
 * decision can choose them. Synchronous: a decision and its reservation
 * happen in one turn of the event loop, which is what makes concurrent
 * requests unable to double-allocate.
 */
export function reserveSlices(
  view: ClusterView,
  request: { readonly workloadId: string; readonly tenant: string },
  slices: readonly SliceReservation[],
  nowMs: number,
): LeaseRecord[] {
  const records: LeaseRecord[] = [];
  slices.forEach((s, i) => {
    const gpu = view.gpuByUuid.get(s.gpuUuid);
    if (!gpu) throw new ReservationConflictError(`reserving ${s.profileName}: GPU ${s.gpuUuid} is not in the view`);
    const pi = gpu.tables?.indexById.get(s.profileId) ?? -1;
    const held = placementMask(s.placement.start, s.placement.size);
    const free =
      s.migUuid === null
        ? (gpu.instanceMask & held) === 0
        : gpu.slots.some((x) => x.migUuid === s.migUuid && x.leasedBy === null && !x.busy);
    if (!free || gpu.wholeLeasedBy !== null) {
      throw new ReservationConflictError(`reserving ${s.profileName}@${s.placement.start} on ${s.gpuUuid}: not free`);
    }
    const rec: LeaseRecord = {
      workloadId: sliceWorkloadId(request.workloadId, i, slices.length),
      groupId: request.workloadId,
      sliceIndex: i,
      tenant: request.tenant,
      nodeId: gpu.node.nodeId,
      gpuUuid: gpu.uuid,
      gpuIndex: gpu.index,
      migUuid: s.migUuid,
      gpuInstanceId: s.gpuInstanceId,
      computeInstanceId: s.computeInstanceId,
      profileId: s.profileId,
      profileName: s.profileName,
      placement: s.placement,
      computeSlices: pi >= 0 ? (gpu.tables?.computeSlices[pi] ?? 0) : s.placement.size,
      memorySlices: s.placement.size,
      createdAtMs: nowMs,
      instanceCreated: s.migUuid === null,
      source: "pending",
      sinceMs: nowMs,
    };
    putRecord(view, rec);
    gpu.node.overlayIds.add(rec.workloadId);
    attachLease(gpu, rec);
    recomputeGpu(view, gpu);
    records.push(rec);
  });
  view.version++;
  return records;
}

/** What the agent answered to Allocate for one slice. */
export interface AllocationConfirmation {
  readonly migUuid: string;
  readonly gpuInstanceId: number | null;
  readonly computeInstanceId: number | null;
  readonly placement: Placement | null;
  readonly createdAtMs: number;
  readonly instanceCreated: boolean;
}

/** The agent confirmed a reserved slice: it is final; it stays in the overlay until a snapshot shows it. */
export function confirmSlice(view: ClusterView, workloadId: string, c: AllocationConfirmation, nowMs: number): void {
  const rec = view.leases.get(workloadId);
  if (!rec || rec.source === "agent") return;
  const gpu = view.gpuByUuid.get(rec.gpuUuid);
  const next: LeaseRecord = {
    ...rec,
    migUuid: c.migUuid,
    gpuInstanceId: c.gpuInstanceId,
    computeInstanceId: c.computeInstanceId,
    placement: c.placement ?? rec.placement,
    createdAtMs: c.createdAtMs,
    instanceCreated: c.instanceCreated,
    source: "confirmed",
    sinceMs: nowMs,
  };
  view.leases.set(workloadId, next);
  if (gpu) {
    const i = gpu.slots.findIndex((s) => s.leasedBy === workloadId);
    const slot = gpu.slots[i];
    if (slot) {
      gpu.slots[i] = {
        ...slot,
        migUuid: c.migUuid,
        giId: c.gpuInstanceId ?? slot.giId,
        ciId: c.computeInstanceId ?? slot.ciId,
      };
    }
    recomputeGpu(view, gpu);
  }
  view.version++;
}

/** The agent refused (or was never asked): the reservation is dropped and its slices are free again. */
export function cancelSlice(view: ClusterView, workloadId: string): void {
  const rec = view.leases.get(workloadId);
  if (!rec || rec.source === "agent") return;
  removeLease(view, workloadId);
}

/** The outcome is unknown (timeout, or a failed call whose release also failed): hold the slice for the overlay TTL. */
export function markSliceInDoubt(view: ClusterView, workloadId: string, nowMs: number): void {
  const rec = view.leases.get(workloadId);
  if (!rec || rec.source === "agent") return;
  view.leases.set(workloadId, { ...rec, source: "in-doubt", sinceMs: nowMs });
  view.version++;
}

/**
 * A lease ended (the agent released it, or reported it lost): its slices are free. An instance
 * created for it is gone; with `nowMs`, it is held as being destroyed until a snapshot stops
 * listing it (at most `tombstoneTtlMs`).
 */
export function removeLease(view: ClusterView, workloadId: string, nowMs?: number): LeaseRecord | undefined {
  const rec = dropRecord(view, workloadId);
  if (!rec) return undefined;
  const destroying =
    view.options.tombstoneTtlMs > 0 && rec.instanceCreated && rec.migUuid !== null && nowMs !== undefined;
  if (destroying) {
    view.tombstones.set(rec.migUuid as string, { gpuUuid: rec.gpuUuid, untilMs: nowMs + view.options.tombstoneTtlMs });
  }
  const gpu = view.gpuByUuid.get(rec.gpuUuid);
  if (gpu) {
    detachLease(gpu, rec, destroying);
    recomputeGpu(view, gpu);
  }
  view.version++;
  return rec;
}

/** Instances of the node destroyed with their lease that its snapshots still list. */
export function destroyingOn(view: ClusterView, nodeId: string): number {
  let n = 0;
  for (const t of view.tombstones.values()) if (view.gpuByUuid.get(t.gpuUuid)?.node.nodeId === nodeId) n++;
  return n;
}
