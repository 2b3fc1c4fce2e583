// `tessera place`, `release`, `cluster`, `explain`: the scheduler's API from the command line.
// Every command reaches the scheduler at --scheduler (or TESSERA_SCHEDULER), the local socket by
// default, with mTLS flags for host:port, and prints a table or, with -o json, the reply as JSON.
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import * as grpc from "@grpc/grpc-js";
import { Command, InvalidArgumentError } from "commander";
import { InputError, TesseraError } from "../errors.js";
import { HealthState } from "../gen/tessera/v1/node_pb.js";
import {
  type Cluster,
  ExplainRequestSchema,
  type ExplainResponse,
  GetClusterRequestSchema,
  LeaseSource,
  type PlaceRequest,
  PlaceRequestSchema,
  type PlaceResponse,
  ReleaseWorkloadRequestSchema,
  WatchClusterRequestSchema,
  type WatchClusterResponse,
} from "../gen/tessera/v1/scheduler_pb.js";
import { tesseraCodeOf } from "../rpc/status.js";
import { connectScheduler, type SchedulerClient, schedulerCall } from "../scheduler/client.js";
import { parseOutputFormat, renderTable, toJson } from "./table.js";

export const SCHEDULER_ENV = "TESSERA_SCHEDULER";
export const DEFAULT_SCHEDULER_ADDRESS = "unix:///run/tessera/scheduler.sock";

interface ConnectionOptions {
  scheduler?: string;
  ca?: string;
  cert?: string;
  key?: string;
  insecure?: boolean;
  output: string;
}

/** The scheduler refused a call: its message, and the Tessera code when it sent one. */
export class SchedulerRefusedError extends TesseraError {
  constructor(err: grpc.ServiceError) {
    super(
      tesseraCodeOf(err) ?? `TESSERA_GRPC_${grpc.status[err.code] ?? err.code}`,
      `${grpc.status[err.code] ?? err.code}: ${err.details}`,
    );
  }
}

function isServiceError(err: unknown): err is grpc.ServiceError {
  return err instanceof Error && typeof (err as grpc.ServiceError).code === "number" && "details" in err;
}

function withConnection(cmd: Command): Command {
  return cmd
    .option(
      "--scheduler <address>",
      `the scheduler: unix:///path or host:port (default $${SCHEDULER_ENV} or ${DEFAULT_SCHEDULER_ADDRESS})`,
    )
    .option("--ca <file>", "with host:port: CA of the scheduler's certificate")
    .option("--cert <file>", "with host:port: this client's certificate")
    .option("--key <file>", "with host:port: this client's key")
    .option("--insecure", "with host:port: plaintext, for a scheduler started with --dev-insecure")
    .option("-o, --output <format>", "table or json", "table");
}

async function withClient<T>(o: ConnectionOptions, fn: (c: SchedulerClient) => Promise<T>): Promise<T> {
  const address = o.scheduler ?? process.env[SCHEDULER_ENV] ?? DEFAULT_SCHEDULER_ADDRESS;
  const client = await connectScheduler({ address, ca: o.ca, cert: o.cert, key: o.key, insecure: o.insecure });
  try {
    return await fn(client);
  } catch (err) {
    throw isServiceError(err) ? new SchedulerRefusedError(err) : err;
  } finally {
    client.close();
  }
}

// ---- request flags (place, explain) ----

interface RequestOptions {
  tenant: string;
  profile?: string;
  memory?: number;
  compute?: number;
  count: number;
  gpuModel: string[];
  rdma?: boolean;
  label: string[];
  priority: number;
}

function int(name: string, min: number, max: number) {
  return (v: string): number => {
    if (!/^-?\d+$/.test(v) || Number(v) < min || Number(v) > max)
      throw new InvalidArgumentError(`${name} must be an integer from ${min} to ${max}`);
    return Number(v);
  };
}

function fraction(v: string): number {
  const n = Number(v.endsWith("%") ? Number(v.slice(0, -1)) / 100 : v);
  if (!Number.isFinite(n) || n < 0 || n > 1)
    throw new InvalidArgumentError("--compute is a fraction of a GPU from 0 to 1 (or a percentage: 30%)");
  return n;
}

const collect = (v: string, prev: string[]) => [...prev, v];

function withRequestOptions(cmd: Command): Command {
  return cmd
    .argument("<workload-id>", "the workload's id (placing it again returns what it holds)")
    .requiredOption("--tenant <tenant>", "the tenant the workload belongs to")
    .option("--profile <name>", "a MIG profile as NVIDIA names it (3g.40gb)")
    .option("--memory <MiB>", "shape: GPU memory the workload needs", int("--memory", 0, 2 ** 31))
    .option("--compute <fraction>", "shape: fraction of one GPU's compute (0.3 or 30%)", fraction)
    .option("--count <n>", "slices, all on one node, all or nothing", int("--count", 1, 64), 1)
    .option("--gpu-model <substring>", "allowed GPU model (repeatable): H100, A100-SXM4-80GB", collect, [])
    .option("--rdma", "the GPU's nearest healthy NIC must be within PXB")
    .option("--label <key=value>", "a node label the node must have (repeatable)", collect, [])
    .option("--priority <n>", "carried with the workload", int("--priority", -(2 ** 31), 2 ** 31 - 1), 0);
}

function placeRequest(workloadId: string, o: RequestOptions): PlaceRequest {
  const shape = o.memory !== undefined || o.compute !== undefined;
  if (o.profile !== undefined && shape)
    throw new InputError("give --profile or a shape (--memory/--compute), not both");
  if (o.profile === undefined && !shape) throw new InputError("give --profile, or --memory and/or --compute");
  const labels: Record<string, string> = {};
  for (const l of o.label) {
    const at = l.indexOf("=");
    if (at <= 0) throw new InputError(`--label ${l}: expected key=value`);
    labels[l.slice(0, at)] = l.slice(at + 1);
  }
  const init: MessageInitShape<typeof PlaceRequestSchema> = {
    workloadId,
    tenant: o.tenant,
    target:
      o.profile !== undefined
        ? { case: "profile", value: o.profile }
        : { case: "shape", value: { memoryMib: BigInt(o.memory ?? 0), computeFraction: o.compute ?? 0 } },
    count: o.count,
    constraints: { gpuModels: o.gpuModel, needsRdma: o.rdma === true, nodeLabels: labels },
    priority: o.priority,
  };
  return create(PlaceRequestSchema, init);
}

// ---- rendering ----

const SOURCE: Record<LeaseSource, string> = {
  [LeaseSource.UNSPECIFIED]: "?",
  [LeaseSource.AGENT]: "agent",
  [LeaseSource.PENDING]: "pending",
  [LeaseSource.CONFIRMED]: "confirmed",
  [LeaseSource.IN_DOUBT]: "in doubt",
};

const HEALTH: Record<HealthState, string> = {
  [HealthState.UNSPECIFIED]: "unknown",
  [HealthState.HEALTHY]: "healthy",
  [HealthState.DEGRADED]: "degraded",
  [HealthState.UNHEALTHY]: "unhealthy",
};

export function renderPlacement(r: PlaceResponse): string {
  const rows = r.slices.map((s) => [
    s.sliceWorkloadId,
    String(s.gpuIndex),
    s.profileName,
    s.placement ? `${s.placement.start}+${s.placement.size}` : "whole GPU",
    s.deviceUuid,
  ]);
  return [
    `${r.created ? "placed" : "already placed"}: workload ${r.workloadId} (tenant ${r.tenant}) on node ${r.nodeId}` +
      (r.wasteMib !== undefined ? `; the profile holds ${r.wasteMib} MiB more than asked` : ""),
    "",
    renderTable(["SLICE", "GPU", "PROFILE", "SLICES", "DEVICE"], rows),
    "",
    `CUDA_VISIBLE_DEVICES=${r.cudaVisibleDevices}`,
  ].join("\n");
}

const pct = (x: number) => `${Math.round(x * 100)}%`;

export function renderCluster(c: Cluster): string {
  const out: string[] = [];
  const t = c.totals;
  if (c.notReadyReason !== "") out.push(`NOT PLACING YET: ${c.notReadyReason}`, "");
  out.push(
    `${t?.availableNodes ?? 0}/${t?.nodes ?? 0} nodes available, ${t?.gpus ?? 0} GPUs, ` +
      `${t?.freeSlices ?? 0}/${t?.totalSlices ?? 0} memory slices free, ${t?.leases ?? 0} leases, ` +
      `weighted stranded slices ${t?.weightedStrandedSlices ?? 0}`,
    "",
  );
  out.push(
    renderTable(
      ["NODE", "STATE", "MIG", "GPUS", "FREE", "LEASES", "LABELS"],
      c.nodes.map((n) => [
        n.nodeId,
        n.available ? "available" : `UNAVAILABLE: ${n.unavailableReason}`,
        n.dynamicMig ? "dynamic" : "static",
        String(n.gpus.length),
        `${n.freeSlices}/${n.totalSlices}`,
        String(n.leases.length),
        Object.entries(n.labels)
          .map(([k, v]) => `${k}=${v}`)
          .join(","),
      ]),
    ),
  );
  for (const n of c.nodes) {
    out.push("", `${n.nodeId} (${n.address}${n.simulated ? ", simulated" : ""}; link ${n.linkState})`);
    out.push(
      renderTable(
        ["GPU", "MODEL", "HEALTH", "SLOTS", "FRAG", "LARGEST FREE"],
        n.gpus.map((g) => [
          String(g.index),
          g.model.replace(/^NVIDIA /, ""),
          g.lost
            ? "lost"
            : g.xidReason !== ""
              ? `held: ${g.xidReason}`
              : HEALTH[g.health?.state ?? HealthState.UNSPECIFIED],
          g.slotMap === "" ? (g.migEnabled ? "?" : "MIG off") : g.slotMap,
          g.fragmentation ? pct(g.fragmentation.score) : "-",
          g.fragmentation?.largestPlaceable || "-",
        ]),
      ),
    );
    for (const u of n.unavailableGpus) out.push(`  GPU ${u.index}: ${u.error}`);
  }
  const leases = c.nodes.flatMap((n) => n.leases);
  if (leases.length > 0) {
    out.push(
      "",
      renderTable(
        ["WORKLOAD", "TENANT", "NODE", "GPU", "PROFILE", "DEVICE", "STATE"],
        leases.map((l) => [
          l.sliceWorkloadId,
          l.tenant,
          l.nodeId,
          String(l.gpuIndex),
          l.placement ? `${l.profileName}@${l.placement.start}` : l.profileName || "whole GPU",
          l.migUuid || l.gpuUuid,
          SOURCE[l.source],
        ]),
      ),
    );
  }
  if (c.tenants.length > 0) {
    out.push(
      "",
      renderTable(
        ["TENANT", "COMPUTE SLICES", "MEMORY SLICES"],
        c.tenants.map((u) => [
          u.tenant,
          `${u.computeSlices}${u.computeSlicesQuota !== undefined ? `/${u.computeSlicesQuota}` : ""}`,
          `${u.memorySlices}${u.memorySlicesQuota !== undefined ? `/${u.memorySlicesQuota}` : ""}`,
        ]),
      ),
    );
  }
  for (const conflict of c.conflicts) out.push(`CONFLICT: ${conflict}`);
  return out.join("\n");
}

export function renderExplanation(e: ExplainResponse, limit: number): string {
  const out: string[] = [];
  out.push(
    renderTable(
      ["MODEL", "MEANS", "WASTE"],
      e.mappings.map((m) => [
        m.model,
        m.profileName || `nothing: ${m.detail}`,
        m.wasteMib !== undefined ? `${m.wasteMib} MiB, ${pct(m.wasteComputeFraction ?? 0)} compute` : "-",
      ]),
    ),
  );
  out.push("", `policy ${e.policy}; ${e.candidates.length} candidates, best first:`);
  out.push(
    renderTable(
      ["#", "NODE", "GPU", "ACTION", "PROFILE", "ΔFRAG", "LEFT", "NODE FREE", "DEGRADED"],
      e.candidates
        .slice(0, limit)
        .map((c, i) => [
          String(i + 1),
          c.nodeId,
          c.slices.map((s) => s.gpuIndex).join(","),
          [...new Set(c.slices.map((s) => s.action))].join(","),
          c.slices.map((s) => `${s.profileName}@${s.placement?.start}`).join(","),
          String(c.score?.fragmentationGrowth ?? 0),
          String(c.score?.leftoverSlices ?? 0),
          `${c.score?.nodeFreeSlices ?? 0}/${c.score?.nodeTotalSlices ?? 0}`,
          c.score?.degraded ? "yes" : "",
        ]),
    ),
  );
  if (e.candidates.length > limit) out.push(`… ${e.candidates.length - limit} more (--limit)`);
  out.push("", `${e.rejections.length} rejected:`);
  out.push(
    renderTable(
      ["NODE", "GPU", "WHY", "DETAIL"],
      e.rejections.map((r) => [r.nodeId, r.gpuIndex === undefined ? "*" : String(r.gpuIndex), r.code, r.detail]),
    ),
  );
  const d = e.decision;
  out.push(
    "",
    e.alreadyPlaced
      ? "decision: the workload already holds slices; Place returns them"
      : d
        ? `decision: node ${d.nodeId}, ${d.slices.map((s) => `GPU ${s.gpuIndex} ${s.action} ${s.profileName}@${s.placement?.start}`).join("; ")}`
        : "decision: none (nothing fits)",
  );
  if (e.quotaRefusal !== "") out.push(`quota: REFUSED: ${e.quotaRefusal}`);
  return out.join("\n");
}

// ---- commands ----

export function placeCommand(): Command {
  return withRequestOptions(withConnection(new Command("place")))
    .description("place a workload on MIG slices (idempotent by workload id)")
    .action(async (workloadId: string, o: RequestOptions & ConnectionOptions) => {
      const format = parseOutputFormat(o.output);
      const req = placeRequest(workloadId, o);
      const res = await withClient(o, (c) => schedulerCall(c, "place", req));
      process.stdout.write(`${format === "json" ? toJson(res) : renderPlacement(res)}\n`);
    });
}

export function releaseCommand(): Command {
  return withConnection(new Command("release"))
    .description("release every slice of a workload (idempotent)")
    .argument("<workload-id>")
    .option("--tenant <tenant>", "refuse unless the workload belongs to this tenant")
    .action(async (workloadId: string, o: ConnectionOptions & { tenant?: string }) => {
      const format = parseOutputFormat(o.output);
      const req = create(ReleaseWorkloadRequestSchema, { workloadId, tenant: o.tenant ?? "" });
      const res = await withClient(o, (c) => schedulerCall(c, "releaseWorkload", req));
      process.stdout.write(
        `${format === "json" ? toJson(res) : res.released ? `released ${workloadId} (${res.slices} slices)` : `${workloadId} held nothing`}\n`,
      );
    });
}

export function clusterCommand(): Command {
  return withConnection(new Command("cluster"))
    .description("nodes and GPUs with slot maps, fragmentation, leases and tenants, as the scheduler sees them")
    .option("--watch", "print the cluster again whenever it changes (Ctrl-C stops)")
    .action(async (o: ConnectionOptions & { watch?: boolean }) => {
      const format = parseOutputFormat(o.output);
      const print = (c: Cluster) => {
        const text = format === "json" ? toJson(c) : renderCluster(c);
        const when = c.time ? new Date(timestampMs(c.time)).toISOString() : "";
        process.stdout.write(o.watch && format === "table" ? `--- ${when}\n${text}\n\n` : `${text}\n`);
      };
      await withClient(o, async (client) => {
        if (!o.watch) {
          const res = await schedulerCall(client, "getCluster", create(GetClusterRequestSchema, {}));
          if (res.cluster) print(res.cluster);
          return;
        }
        const stream = client.watchCluster(create(WatchClusterRequestSchema, { intervalMs: 1000 }));
        const stop = () => stream.cancel();
        process.once("SIGINT", stop);
        try {
          await new Promise<void>((resolve, reject) => {
            stream.on("data", (m: WatchClusterResponse) => {
              if (m.cluster) print(m.cluster);
            });
            stream.on("end", () => resolve());
            stream.on("error", (err: grpc.ServiceError) =>
              err.code === grpc.status.CANCELLED ? resolve() : reject(err),
            );
          });
        } finally {
          process.off("SIGINT", stop);
        }
      });
    });
}

export function explainCommand(): Command {
  return withRequestOptions(withConnection(new Command("explain")))
    .description("what `tessera place` would do now, and why: every candidate's score and every rejection")
    .option("--limit <n>", "candidates to list", int("--limit", 1, 100_000), 20)
    .action(async (workloadId: string, o: RequestOptions & ConnectionOptions & { limit: number }) => {
      const format = parseOutputFormat(o.output);
      const request = placeRequest(workloadId, o);
      const res = await withClient(o, (c) => schedulerCall(c, "explain", create(ExplainRequestSchema, { request })));
      process.stdout.write(`${format === "json" ? toJson(res) : renderExplanation(res, o.limit)}\n`);
    });
}

export function schedulerCommands(): Command[] {
  return [placeCommand(), releaseCommand(), clusterCommand(), explainCommand()];
}
