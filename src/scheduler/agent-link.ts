// One link per registered node: a NodeAgent client, a WatchNode stream (events only: the first
// message is a full snapshot of the node and its lease table, then every event in order) that feeds
// the cluster view, and reconnection with exponential backoff when the stream breaks. Lease, MIG
// and health events also schedule a re-read of the node (GetNode), coalesced and serialized per
// node, because events say what changed but not the new instance list; a periodic re-read catches
// anything else (and lets expired reservations go). `AgentLinks` is the decision engine's AgentPort
// over these clients: Allocate and Release with a deadline, cancelled when the engine gives up.
import { create } from "@bufbuild/protobuf";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import * as grpc from "@grpc/grpc-js";
import { TesseraError } from "../errors.js";
import {
  AllocateRequestSchema,
  type AllocateResponse,
  GetNodeRequestSchema,
  type GetNodeResponse,
  type Lease,
  ReleaseRequestSchema,
  type ReleaseResponse,
  WatchNodeRequestSchema,
  type WatchNodeResponse,
} from "../gen/tessera/v1/agent_pb.js";
import type { Node } from "../gen/tessera/v1/node_pb.js";
import { type Event, EventKind } from "../gen/tessera/v1/telemetry_pb.js";
import { createAgentClient, type NodeAgentClient } from "../rpc/client.js";
import { tesseraCodeOf } from "../rpc/status.js";
import { GeometryCache, healthStateFromName, leaseReportFromProto, nodeReportFromProto } from "./agent-report.js";
import {
  applyGpuHealth,
  applyGpuLost,
  applyLeaseEvent,
  applyNodeSnapshot,
  applyXid,
  type ClusterView,
  destroyingOn,
  markNodeStale,
} from "./cluster.js";
import {
  type AgentAllocateRequest,
  type AgentAllocateResult,
  type AgentPort,
  type AgentReleaseRequest,
  AgentTimeoutError,
} from "./decisions.js";
import type { Logger } from "./logger.js";

/** The agent answered a call with an error, or could not be reached. */
export class AgentCallError extends TesseraError {
  readonly grpcCode: grpc.status;
  readonly agentCode: string | undefined;

  constructor(nodeId: string, operation: string, err: grpc.ServiceError) {
    const agentCode = tesseraCodeOf(err);
    super(
      agentCode === undefined ? "TESSERA_AGENT_UNAVAILABLE" : "TESSERA_AGENT_REFUSED",
      `node ${nodeId} ${operation}: ${grpc.status[err.code] ?? err.code}: ${err.details}${agentCode ? ` [${agentCode}]` : ""}`,
    );
    this.grpcCode = err.code;
    this.agentCode = agentCode;
  }
}

/** No link to the node: it never registered with this scheduler (run), or its registration was refused. */
export class AgentUnavailableError extends TesseraError {
  constructor(nodeId: string, why: string) {
    super("TESSERA_AGENT_UNAVAILABLE", `node ${nodeId}: ${why}`);
  }
}

export type LinkStateName = "connecting" | "watching" | "backoff" | "wrong-node" | "closed";

export interface AgentLinkOptions {
  readonly view: ClusterView;
  readonly clock: () => number;
  readonly log: Logger;
  /** Credentials for an agent address (the daemon checked the address when the agent registered). */
  readonly credentialsFor: (address: string) => grpc.ChannelCredentials;
  readonly callTimeoutMs: number;
  readonly resyncIntervalMs: number;
  readonly reconnectMinMs: number;
  readonly reconnectMaxMs: number;
  /** The view changed because of this link (WatchCluster wakes up). */
  readonly changed: () => void;
}

function clientOptions(o: AgentLinkOptions): grpc.ClientOptions {
  return {
    "grpc.keepalive_time_ms": 20_000,
    "grpc.keepalive_timeout_ms": 10_000,
    "grpc.max_receive_message_length": 64 << 20,
    // One connection per agent link: links share nothing, so a slow agent cannot stall another's.
    "grpc.use_local_subchannel_pool": 1,
    // The channel's own reconnect backoff (grpc-js: 1 s, growing to 120 s) must not outlast the link's.
    "grpc.initial_reconnect_backoff_ms": o.reconnectMinMs,
    "grpc.max_reconnect_backoff_ms": o.reconnectMaxMs,
  };
}

/** Coalesces bursts of events into one re-read. */
const REFRESH_DELAY_MS = 25;
/** Re-reads while the node still lists instances destroyed with their leases (until its next sweep). */
const DESTROY_POLL_MS = 250;

const LEASE_CHANGES = new Set(["allocated", "released", "lost"]);

type Unary<I, O> = (
  request: I,
  metadata: grpc.Metadata,
  options: Partial<grpc.CallOptions>,
  callback: (err: grpc.ServiceError | null, response: O) => void,
) => grpc.ClientUnaryCall;

export class AgentLink {
  readonly nodeId: string;
  readonly #o: AgentLinkOptions;
  readonly #geometries: GeometryCache;
  #address: string;
  #client: NodeAgentClient;
  #stream: grpc.ClientReadableStream<WatchNodeResponse> | undefined;
  #state: LinkStateName = "connecting";
  #detail = "";
  #attempt = 0;
  #lastSeq = 0;
  #reconnectTimer: NodeJS.Timeout | undefined;
  #refreshTimer: NodeJS.Timeout | undefined;
  #refreshing = false;
  #refreshAgain = false;
  #refreshAgainIn: number | undefined;
  readonly #resyncTimer: NodeJS.Timeout;
  #closed = false;
  #snapshots = 0;
  #reportedGeometryErrors = false;

  constructor(nodeId: string, address: string, options: AgentLinkOptions, geometries: GeometryCache) {
    this.nodeId = nodeId;
    this.#o = options;
    this.#geometries = geometries;
    this.#address = address;
    this.#client = createAgentClient(address, options.credentialsFor(address), clientOptions(options));
    this.#resyncTimer = setInterval(() => {
      if (this.#state === "watching") this.#scheduleRefresh(0);
    }, options.resyncIntervalMs);
    this.#resyncTimer.unref();
    this.#connect();
  }

  get address(): string {
    return this.#address;
  }

  /** "watching", "connecting", "backoff (attempt 3): UNAVAILABLE: …", "wrong-node: …". */
  get state(): string {
    return this.#detail === "" ? this.#state : `${this.#state}: ${this.#detail}`;
  }

  get stateName(): LinkStateName {
    return this.#state;
  }

  /** Snapshots applied so far (stream starts and re-reads). */
  get snapshots(): number {
    return this.#snapshots;
  }

  /** The agent registered again: reconnect now if the link is waiting to retry, or to a new address. */
  renew(address: string): void {
    if (this.#closed) return;
    if (address !== this.#address) {
      this.#o.log.info({ node: this.nodeId, from: this.#address, to: address }, "agent moved: relinking");
      this.#address = address;
      this.#dropStream();
      this.#client.close();
      this.#client = createAgentClient(address, this.#o.credentialsFor(address), clientOptions(this.#o));
      this.#attempt = 0;
      this.#reconnectNow();
      return;
    }
    if (this.#state === "backoff" || this.#state === "wrong-node") {
      // A fresh channel: the old one may be waiting out its own reconnect backoff.
      this.#dropStream();
      this.#client.close();
      this.#client = createAgentClient(address, this.#o.credentialsFor(address), clientOptions(this.#o));
      this.#reconnectNow();
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#state = "closed";
    this.#detail = "";
    clearTimeout(this.#reconnectTimer);
    clearTimeout(this.#refreshTimer);
    clearInterval(this.#resyncTimer);
    this.#dropStream();
    this.#client.close();
  }

  #reconnectNow(): void {
    clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = undefined;
    this.#dropStream();
    this.#connect();
  }

  #dropStream(): void {
    const s = this.#stream;
    this.#stream = undefined;
    s?.cancel();
  }

  #connect(): void {
    if (this.#closed) return;
    this.#state = "connecting";
    this.#detail = this.#attempt > 0 ? `attempt ${this.#attempt + 1}` : "";
    const stream = this.#client.watchNode(
      create(WatchNodeRequestSchema, { eventsOnly: true, resumeAfterSeq: BigInt(this.#lastSeq) }),
    );
    this.#stream = stream;
    stream.on("data", (m: WatchNodeResponse) => {
      if (this.#stream === stream) this.#onMessage(m);
    });
    stream.on("error", (err: grpc.ServiceError) => {
      if (this.#stream === stream) this.#lost(`${grpc.status[err.code] ?? err.code}: ${err.details}`);
    });
    stream.on("end", () => {
      if (this.#stream === stream) this.#lost("the agent ended the watch stream");
    });
  }

  #lost(why: string): void {
    this.#stream = undefined;
    if (this.#closed) return;
    markNodeStale(this.#o.view, this.nodeId, why);
    this.#attempt++;
    const base = Math.min(this.#o.reconnectMaxMs, this.#o.reconnectMinMs * 2 ** (this.#attempt - 1));
    const delay = Math.round(base * (0.75 + Math.random() * 0.5));
    if (this.#state !== "wrong-node") {
      this.#state = "backoff";
      this.#detail = `attempt ${this.#attempt}: ${why}`;
    }
    const level = this.#attempt === 1 ? "warn" : "debug";
    this.#o.log[level](
      { node: this.nodeId, address: this.#address, attempt: this.#attempt, retryInMs: delay, why },
      "agent watch stream lost; reconnecting",
    );
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = undefined;
      this.#connect();
    }, delay);
    this.#reconnectTimer.unref();
    this.#o.changed();
  }

  #onMessage(m: WatchNodeResponse): void {
    const item = m.item;
    switch (item.case) {
      case "snapshot": {
        const s = item.value;
        const lastSeq = Number(s.lastSeq);
        if (!this.#apply(s.node, s.leases, lastSeq)) return;
        this.#lastSeq = lastSeq;
        if (this.#state !== "watching") {
          this.#o.log.info(
            { node: this.nodeId, address: this.#address, leases: s.leases.length, lastSeq },
            this.#attempt > 0 ? "agent watch stream back: view reconciled" : "watching agent",
          );
        }
        this.#state = "watching";
        this.#detail = "";
        this.#attempt = 0;
        return;
      }
      case "event": {
        const e = item.value;
        const seq = Number(e.seq);
        if (seq <= this.#lastSeq) return; // already in the snapshot
        this.#lastSeq = seq;
        this.#onEvent(e);
        return;
      }
      case "gap":
        this.#lastSeq = Math.max(this.#lastSeq, Number(item.value.toSeq));
        this.#scheduleRefresh(0);
        return;
      default:
        return;
    }
  }

  /** Applies a snapshot of the node; false when the agent is not the node that registered. */
  #apply(node: Node | undefined, leases: readonly Lease[], lastSeq: number): boolean {
    if (!node) return false;
    if (node.nodeId !== this.nodeId) {
      const why = `the agent at ${this.#address} reports node id ${node.nodeId}, not ${this.nodeId}`;
      if (this.#state !== "wrong-node") this.#o.log.error({ node: this.nodeId, address: this.#address }, why);
      this.#state = "wrong-node";
      this.#detail = why;
      this.#dropStream();
      this.#lost(why);
      return false;
    }
    const { node: report, geometryErrors } = nodeReportFromProto(node, this.#geometries);
    if (geometryErrors.length > 0 && !this.#reportedGeometryErrors) {
      this.#reportedGeometryErrors = true;
      this.#o.log.warn(
        { node: this.nodeId, errors: geometryErrors },
        "GPUs with a MIG geometry the scheduler cannot use",
      );
    }
    applyNodeSnapshot(
      this.#o.view,
      { node: report, leases: leases.map(leaseReportFromProto), lastSeq },
      this.#o.clock(),
    );
    this.#snapshots++;
    this.#o.changed();
    return true;
  }

  #onEvent(e: Event): void {
    const view = this.#o.view;
    const now = this.#o.clock();
    const d = e.detail;
    if (d.case === "lease") {
      if (LEASE_CHANGES.has(d.value.change))
        applyLeaseEvent(
          view,
          this.nodeId,
          {
            workloadId: d.value.workloadId,
            change: d.value.change as "allocated" | "released" | "lost",
            deviceUuid: d.value.deviceUuid,
          },
          now,
        );
    } else if (d.case === "health" && e.gpuUuid !== "") {
      applyGpuHealth(view, e.gpuUuid, { state: healthStateFromName(d.value.current), reasons: [...d.value.reasons] });
    } else if (d.case === "xid" && e.gpuUuid !== "") {
      applyXid(view, e.gpuUuid, Number(d.value.code), e.time ? timestampMs(e.time) : now);
    } else if (e.kind === EventKind.GPU_LOST && e.gpuUuid !== "") {
      applyGpuLost(view, e.gpuUuid);
    }
    this.#o.changed();
    // Events say what changed, not the node's new instance list: re-read it (coalesced).
    this.#scheduleRefresh(REFRESH_DELAY_MS);
  }

  #scheduleRefresh(delayMs: number): void {
    if (this.#closed) return;
    if (this.#refreshing || this.#refreshTimer !== undefined) {
      this.#refreshAgain ||= this.#refreshing;
      return;
    }
    this.#refreshTimer = setTimeout(() => {
      this.#refreshTimer = undefined;
      void this.#refresh();
    }, delayMs);
    this.#refreshTimer.unref();
  }

  async #refresh(): Promise<void> {
    this.#refreshing = true;
    try {
      const res = await this.#unary<GetNodeResponse>("getNode", "GetNode", create(GetNodeRequestSchema, {}), undefined);
      if (!this.#closed && this.#state === "watching") {
        this.#apply(res.node, res.leases, this.#lastSeq);
        if (destroyingOn(this.#o.view, this.nodeId) > 0) this.#refreshAgainIn = DESTROY_POLL_MS;
      }
    } catch (err) {
      this.#o.log.debug({ node: this.nodeId, err: (err as Error).message }, "re-reading the node failed");
    } finally {
      this.#refreshing = false;
      const again = this.#refreshAgain ? REFRESH_DELAY_MS : this.#refreshAgainIn;
      this.#refreshAgain = false;
      this.#refreshAgainIn = undefined;
      if (again !== undefined) this.#scheduleRefresh(again);
    }
  }

  /** A unary call with the link's deadline; aborting `signal` cancels it and rejects with the signal's reason. */
  #unary<O>(method: string, operation: string, request: unknown, signal: AbortSignal | undefined): Promise<O> {
    return new Promise<O>((resolve, reject) => {
      if (signal?.aborted) {
        reject(signal.reason);
        return;
      }
      const fn = (this.#client as unknown as Record<string, Unary<unknown, O>>)[method] as Unary<unknown, O>;
      const onAbort = () => call.cancel();
      const call = fn.call(
        this.#client,
        request,
        new grpc.Metadata(),
        { deadline: Date.now() + this.#o.callTimeoutMs },
        (err, res) => {
          signal?.removeEventListener("abort", onAbort);
          if (!err) resolve(res);
          else if (signal?.aborted) reject(signal.reason);
          else if (err.code === grpc.status.DEADLINE_EXCEEDED)
            reject(new AgentTimeoutError(operation, this.nodeId, this.#o.callTimeoutMs));
          else reject(new AgentCallError(this.nodeId, operation, err));
        },
      );
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  async allocate(r: AgentAllocateRequest, signal: AbortSignal): Promise<AgentAllocateResult> {
    const t = r.target;
    const request = create(AllocateRequestSchema, {
      workloadId: r.workloadId,
      tenant: r.tenant,
      target:
        t.kind === "device"
          ? { case: "deviceUuid", value: t.deviceUuid }
          : {
              case: "newInstance",
              value: { gpuUuid: t.gpuUuid, profile: t.profile, placementStart: t.placementStart },
            },
    });
    const res = await this.#unary<AllocateResponse>("allocate", "Allocate", request, signal);
    const l = res.lease;
    return {
      migUuid: res.cudaVisibleDevices || l?.migUuid || l?.gpuUuid || "",
      gpuInstanceId: l?.gpuInstanceId ?? null,
      computeInstanceId: l?.computeInstanceId ?? null,
      placement: l?.placement ? { start: l.placement.start, size: l.placement.size } : null,
      createdAtMs: l?.createdAt ? timestampMs(l.createdAt) : this.#o.clock(),
      instanceCreated: l?.instanceCreated ?? false,
    };
  }

  async release(r: AgentReleaseRequest, signal: AbortSignal): Promise<{ readonly released: boolean }> {
    const res = await this.#unary<ReleaseResponse>(
      "release",
      "Release",
      create(ReleaseRequestSchema, { workloadId: r.workloadId }),
      signal,
    );
    return { released: res.released };
  }
}

/** Every node's link, and the decision engine's AgentPort over them. */
export class AgentLinks implements AgentPort {
  readonly #o: AgentLinkOptions;
  readonly #links = new Map<string, AgentLink>();
  readonly #geometries = new GeometryCache();

  constructor(options: AgentLinkOptions) {
    this.#o = options;
  }

  /** After a registration: a new link, or the existing one renewed (reconnect if waiting, relink if moved). */
  ensure(nodeId: string, address: string): AgentLink {
    let link = this.#links.get(nodeId);
    if (link) {
      link.renew(address);
      return link;
    }
    link = new AgentLink(nodeId, address, this.#o, this.#geometries);
    this.#links.set(nodeId, link);
    return link;
  }

  get(nodeId: string): AgentLink | undefined {
    return this.#links.get(nodeId);
  }

  get size(): number {
    return this.#links.size;
  }

  #link(nodeId: string): AgentLink {
    const link = this.#links.get(nodeId);
    if (!link)
      throw new AgentUnavailableError(nodeId, "no link to its agent (it has not registered with this scheduler)");
    return link;
  }

  allocate(request: AgentAllocateRequest, signal: AbortSignal): Promise<AgentAllocateResult> {
    try {
      return this.#link(request.nodeId).allocate(request, signal);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  release(request: AgentReleaseRequest, signal: AbortSignal): Promise<{ readonly released: boolean }> {
    try {
      return this.#link(request.nodeId).release(request, signal);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  close(): void {
    for (const l of this.#links.values()) l.close();
    this.#links.clear();
  }
}
