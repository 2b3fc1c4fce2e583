// Stand-in agents for bench/scale: one process serves many nodes, each on its own gRPC server
// (127.0.0.1:0) speaking tessera.v1.NodeAgentService (GetNode, WatchNode, Allocate, Release,
// ListLeases) over an in-process fleet, and registering with the scheduler through the same
// NodeRegistrar tessera-agent uses. Real agents are one Node.js process each (~100 MB and two
// worker threads); 200 of them do not fit a 2-core test machine, 200 of these do, and the
// scheduler cannot tell the difference on the wire.
// Run: node --import tsx bench/lib/agent-farm.ts '<json FarmSpec>'; prints one JSON line when
// every node is serving, then runs until SIGTERM.
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import * as grpc from "@grpc/grpc-js";
import {
  AllocateResponseSchema,
  GetNodeResponseSchema,
  type Lease,
  LeaseSchema,
  ListLeasesResponseSchema,
  NodeAgentService,
  ReleaseResponseSchema,
  WatchNodeResponseSchema,
} from "../../src/gen/tessera/v1/agent_pb.js";
import { HealthState, type Node, NodeSchema } from "../../src/gen/tessera/v1/node_pb.js";
import type { GpuGeometry } from "../../src/mig/types.js";
import { addService } from "../../src/rpc/grpc-adapter.js";
import { createSchedulerClient } from "../../src/scheduler/client.js";
import type { LeaseReport } from "../../src/scheduler/cluster.js";
import { InProcessFleet } from "../../src/scheduler/in-process-fleet.js";
import { NodeRegistrar } from "../../src/scheduler/registrar.js";
import { A100_80GB, H100_80GB } from "../../test/mig/geometries.js";

export interface FarmSpec {
  readonly scheduler: string;
  readonly prefix: string;
  readonly nodes: number;
  readonly gpusPerNode: number;
  /** 1g leases each node holds at start (what a restarted scheduler must find again). */
  readonly leasesPerNode: number;
  /** Registration lease asked for (0: the scheduler's default). */
  readonly leaseTtlMs: number;
}

function nodeProto(fleet: InProcessFleet, nodeId: string): Node {
  const s = fleet.snapshot(nodeId).node;
  return create(NodeSchema, {
    nodeId,
    agentVersion: "farm",
    simulated: true,
    dynamicMig: s.dynamicMig,
    labels: { ...s.labels },
    gpus: s.gpus.map((g) => {
      const geometry = g.geometry as GpuGeometry;
      return {
        index: g.index,
        uuid: g.uuid,
        name: g.model,
        pciDeviceId: geometry.pciDeviceId,
        memoryTotalMib: BigInt(g.memoryTotalMiB),
        health: { state: HealthState.HEALTHY },
        migCapable: true,
        migEnabled: true,
        memorySliceCount: geometry.memorySliceCount,
        profiles: geometry.profiles.map((p) => ({
          id: p.id,
          name: p.name,
          sliceCount: p.sliceCount,
          memorySlices: p.memorySlices,
          memoryMib: BigInt(p.memoryMiB),
          multiprocessorCount: p.multiprocessorCount,
          maxInstances: p.maxInstances,
          placementStarts: [...p.placements],
        })),
        instances: g.instances.map((gi) => ({
          gpuInstanceId: gi.giId,
          profileId: gi.profileId,
          profileName: geometry.profiles.find((p) => p.id === gi.profileId)?.name ?? "",
          placement: { start: gi.placement.start, size: gi.placement.size },
          computeInstances: gi.computeInstances.map((ci) => ({
            computeInstanceId: ci.ciId,
            profileId: ci.profileId,
            uuid: ci.uuid,
            processIds: [...ci.processIds],
          })),
        })),
      };
    }),
    topology: s.topology.map((t) => ({ ...t, gpuIndex: Number(t.gpuUuid.split("-").pop()) })),
  });
}

function leaseProto(l: LeaseReport): Lease {
  return create(LeaseSchema, {
    workloadId: l.workloadId,
    tenant: l.tenant,
    gpuIndex: l.gpuIndex,
    gpuUuid: l.gpuUuid,
    migUuid: l.migUuid ?? "",
    gpuInstanceId: l.gpuInstanceId ?? undefined,
    computeInstanceId: l.computeInstanceId ?? undefined,
    profileName: l.profileName,
    ...(l.placement ? { placement: { ...l.placement } } : {}),
    createdAt: timestampFromMs(l.createdAtMs),
    instanceCreated: l.instanceCreated,
  });
}

async function serveNode(fleet: InProcessFleet, nodeId: string): Promise<{ server: grpc.Server; address: string }> {
  const server = new grpc.Server();
  const watchers = new Set<grpc.ServerWritableStream<unknown, unknown>>();
  let seq = 0n;
  const refused = (err: unknown) => ({ code: grpc.status.FAILED_PRECONDITION, details: (err as Error).message });
  addService(server, NodeAgentService, {
    getNode: (_call, cb) => {
      cb(
        null,
        create(GetNodeResponseSchema, { node: nodeProto(fleet, nodeId), leases: fleet.leases(nodeId).map(leaseProto) }),
      );
    },
    watchNode: (call) => {
      watchers.add(call as grpc.ServerWritableStream<unknown, unknown>);
      call.on("cancelled", () => watchers.delete(call as grpc.ServerWritableStream<unknown, unknown>));
      call.write(
        create(WatchNodeResponseSchema, {
          item: {
            case: "snapshot",
            value: { node: nodeProto(fleet, nodeId), leases: fleet.leases(nodeId).map(leaseProto), lastSeq: seq },
          },
        }),
      );
    },
    allocate: (call, cb) => {
      const r = call.request;
      const t = r.target;
      try {
        const result = fleet.allocateNow({
          nodeId,
          address: null,
          workloadId: r.workloadId,
          tenant: r.tenant,
          target:
            t.case === "deviceUuid"
              ? { kind: "device", deviceUuid: t.value }
              : {
                  kind: "new-instance",
                  gpuUuid: t.value?.gpuUuid ?? "",
                  profile: t.value?.profile ?? "",
                  placementStart: t.value?.placementStart ?? 0,
                },
        });
        seq++;
        const lease = fleet.leases(nodeId).find((l) => l.workloadId === r.workloadId) as LeaseReport;
        cb(
          null,
          create(AllocateResponseSchema, {
            lease: leaseProto(lease),
            cudaVisibleDevices: result.migUuid,
            created: true,
          }),
        );
      } catch (err) {
        cb(refused(err), null);
      }
    },
    release: (call, cb) => {
      const out = fleet.releaseNow({ nodeId, address: null, workloadId: call.request.workloadId });
      if (out.released) seq++;
      cb(null, create(ReleaseResponseSchema, { released: out.released, instanceDestroyed: out.released }));
    },
    listLeases: (_call, cb) => {
      cb(null, create(ListLeasesResponseSchema, { leases: fleet.leases(nodeId).map(leaseProto) }));
    },
    getMigLayout: (_c, cb) => cb({ code: grpc.status.UNIMPLEMENTED }, null),
    planMigLayout: (_c, cb) => cb({ code: grpc.status.UNIMPLEMENTED }, null),
    applyMigLayout: (_c, cb) => cb({ code: grpc.status.UNIMPLEMENTED }, null),
    runDiagnostics: (call) => call.emit("error", { code: grpc.status.UNIMPLEMENTED }),
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    ),
  );
  return { server, address: `127.0.0.1:${port}` };
}

async function main(spec: FarmSpec): Promise<void> {
  const ids = Array.from({ length: spec.nodes }, (_, i) => `${spec.prefix}${String(i).padStart(3, "0")}`);
  const fleet = new InProcessFleet(
    ids.map((nodeId, i) => ({
      nodeId,
      geometry: i % 2 === 0 ? H100_80GB : A100_80GB,
      gpuCount: spec.gpusPerNode,
      dynamicMig: true,
      labels: { farm: spec.prefix },
    })),
    Date.now,
  );
  for (const nodeId of ids) {
    for (let k = 0; k < spec.leasesPerNode; k++) {
      fleet.allocateNow({
        nodeId,
        address: null,
        workloadId: `${nodeId}-w${k}`,
        tenant: `t${k % 4}`,
        target: {
          kind: "new-instance",
          gpuUuid: `GPU-${nodeId}-${k % spec.gpusPerNode}`,
          profile: "1g.10gb",
          placementStart: Math.floor(k / spec.gpusPerNode),
        },
      });
    }
  }
  const servers = await Promise.all(ids.map((id) => serveNode(fleet, id)));
  const quiet = { info: () => undefined, warn: () => undefined, debug: () => undefined };
  const registrars = ids.map((nodeId, i) => {
    const client = createSchedulerClient(spec.scheduler, grpc.credentials.createInsecure(), {
      "grpc.use_local_subchannel_pool": 1,
      "grpc.initial_reconnect_backoff_ms": 100,
      "grpc.max_reconnect_backoff_ms": 1000,
    });
    const r = new NodeRegistrar({
      client,
      nodeId,
      address: (servers[i] as { address: string }).address,
      leaseTtlMs: spec.leaseTtlMs,
      log: quiet,
    });
    r.start();
    return { r, client };
  });
  process.stdout.write(
    `${JSON.stringify({ msg: "farm ready", nodes: ids.length, leases: fleet.allLeases().length })}\n`,
  );
  await new Promise<void>((resolve) => process.once("SIGTERM", () => resolve()));
  await Promise.all(registrars.map(({ r }) => r.stop()));
  for (const { client } of registrars) client.close();
  for (const { server } of servers) server.forceShutdown();
  process.exit(0);
}

const arg = process.argv[2];
if (arg !== undefined) {
  main(JSON.parse(arg) as FarmSpec).catch((err: unknown) => {
    process.stderr.write(`agent-farm: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  });
}
