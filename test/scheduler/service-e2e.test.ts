// The scheduler end to end: tessera-scheduler and two real agents as child processes over
// loopback, each agent on its own simulated host. A dynamic DGX H100 (new instances are carved)
// and a static DGX A100 (only its existing MIG devices are handed out).
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { type ServiceError, status } from "@grpc/grpc-js";
import { ListLeasesRequestSchema } from "../../src/gen/tessera/v1/agent_pb.js";
import {
  ExplainRequestSchema,
  type PlaceRequest,
  PlaceRequestSchema,
  RegisterNodeRequestSchema,
  ReleaseWorkloadRequestSchema,
  WatchClusterRequestSchema,
  type WatchClusterResponse,
} from "../../src/gen/tessera/v1/scheduler_pb.js";
import { call } from "../../src/rpc/client.js";
import { tesseraCodeOf } from "../../src/rpc/status.js";
import { type SchedulerClient, schedulerCall } from "../../src/scheduler/client.js";
import { runCli } from "../cli/run-cli.js";
import {
  clusterReady,
  eventually,
  removeTree,
  type SchedulerProcess,
  type SimAgent,
  startSchedulerProcess,
  startSimAgent,
} from "./cluster-harness.js";

let scheduler: SchedulerProcess;
let client: SchedulerClient;
let h100: SimAgent;
let a100: SimAgent;
let dir: string;

const A100_LAYOUT = { 0: ["2g.10gb@0", "1g.5gb@2", "1g.5gb@3", "3g.20gb@4"], 1: ["4g.20gb@0", "3g.20gb@4"] };

before(async () => {
  const { mkdtempSync } = await import("node:fs");
  const { tmpdir } = await import("node:os");
  dir = mkdtempSync(join(tmpdir(), "tessera-sched-e2e-"));
  const config = join(dir, "scheduler.yaml");
  writeFileSync(config, ["quotas:", "  tenants:", "    capped: { computeSlices: 3 }", ""].join("\n"));
  scheduler = await startSchedulerProcess({ config, startupGraceMs: 500 });
  client = scheduler.client();
  [h100, a100] = await Promise.all([
    startSimAgent({
      nodeId: "h100",
      host: { preset: "dgx-h100" },
      dynamic: true,
      labels: { rack: "r1", fabric: "ib" },
      scheduler: scheduler.tcp,
    }),
    startSimAgent({
      nodeId: "a100",
      host: { preset: "dgx-a100", layouts: A100_LAYOUT },
      dynamic: false,
      labels: { rack: "r2" },
      scheduler: scheduler.tcp,
    }),
  ]);
  await clusterReady(scheduler, ["h100", "a100"]);
});

after(async () => {
  await Promise.all([h100?.stop(), a100?.stop()]);
  await scheduler?.stop();
  for (const a of [h100, a100]) if (a) removeTree(a.dir);
  if (dir) removeTree(dir);
});

let counter = 0;
function request(init: MessageInitShape<typeof PlaceRequestSchema> = {}): PlaceRequest {
  counter++;
  return create(PlaceRequestSchema, {
    workloadId: `job-${counter}`,
    tenant: "team-a",
    target: { case: "profile", value: "1g.10gb" },
    ...init,
  });
}

function place(r: PlaceRequest) {
  return schedulerCall(client, "place", r);
}

async function refusal(p: Promise<unknown>): Promise<ServiceError> {
  try {
    await p;
  } catch (err) {
    return err as ServiceError;
  }
  assert.fail("expected the call to be refused");
}

async function agentLeases(a: SimAgent) {
  const c = a.agent.client();
  return (await call(c, "listLeases", create(ListLeasesRequestSchema, {}))).leases;
}

describe("scheduler service, end to end", () => {
  it("carves a new instance on a dynamic node, and releases it through the agent", async () => {
    const r = await place(request({ target: { case: "profile", value: "3g.40gb" } }));
    assert.equal(r.nodeId, "h100");
    assert.equal(r.created, true);
    assert.equal(r.slices.length, 1);
    const s = r.slices[0];
    assert.equal(s?.profileName, "3g.40gb");
    assert.match(s?.deviceUuid ?? "", /^MIG-/);
    assert.equal(r.cudaVisibleDevices, s?.deviceUuid);
    assert.ok(s?.placement && [0, 4].includes(s.placement.start));
    // The agent's own lease table is the truth.
    const held = (await agentLeases(h100)).find((l) => l.workloadId === r.workloadId);
    assert.equal(held?.migUuid, s?.deviceUuid);
    assert.equal(held?.instanceCreated, true);
    assert.equal(held?.tenant, "team-a");

    const release = create(ReleaseWorkloadRequestSchema, { workloadId: r.workloadId, tenant: r.tenant });
    const rel = await schedulerCall(client, "releaseWorkload", release);
    assert.deepEqual([rel.released, rel.slices], [true, 1]);
    assert.equal(
      (await agentLeases(h100)).find((l) => l.workloadId === r.workloadId),
      undefined,
    );
    const again = await schedulerCall(client, "releaseWorkload", release);
    assert.equal(again.released, false, "a second release is an idempotent no-op");
  });

  it("hands out an existing MIG device on a static node", async () => {
    const r = await place(request({ target: { case: "profile", value: "2g.10gb" } }));
    assert.equal(r.nodeId, "a100");
    const held = (await agentLeases(a100)).find((l) => l.workloadId === r.workloadId);
    assert.equal(held?.instanceCreated, false);
    assert.equal(held?.placement?.start, 0);
    assert.equal(r.slices[0]?.gpuIndex, 0);
  });

  it("places a shape as the smallest profile that holds it, and says what it wastes", async () => {
    const r = await place(
      request({
        target: { case: "shape", value: { memoryMib: 15_000n, computeFraction: 0.2 } },
        constraints: { gpuModels: ["H100"] },
      }),
    );
    assert.equal(r.slices[0]?.profileName, "2g.20gb");
    assert.equal(r.wasteMib, 20_096n - 15_000n);
  });

  it("places count > 1 slices on one node, and is idempotent by workload id", async () => {
    const req = request({ count: 3, constraints: { nodeLabels: { rack: "r1" } } });
    const r = await place(req);
    assert.equal(r.slices.length, 3);
    assert.deepEqual(
      r.slices.map((s) => s.sliceWorkloadId),
      [0, 1, 2].map((i) => `${req.workloadId}+${i}`),
    );
    assert.equal(r.cudaVisibleDevices.split(",").length, 3);
    const ids = new Set((await agentLeases(h100)).map((l) => l.workloadId));
    for (const s of r.slices) assert.ok(ids.has(s.sliceWorkloadId));

    const retry = await place(req);
    assert.equal(retry.created, false);
    assert.equal(retry.cudaVisibleDevices, r.cudaVisibleDevices);
    const other = await refusal(place(create(PlaceRequestSchema, { ...req, tenant: "team-b" })));
    assert.equal(other.code, status.ALREADY_EXISTS);
    assert.match(other.details, /held by tenant team-a/);
  });

  it("lets concurrent placements race for the last free device: exactly one wins", async () => {
    // The static A100 has two free 3g.20gb devices; take one, then race for the other.
    const constraints = { gpuModels: ["A100"] };
    await place(request({ target: { case: "profile", value: "3g.20gb" }, constraints }));
    const racers = Array.from({ length: 8 }, () =>
      place(request({ target: { case: "profile", value: "3g.20gb" }, constraints })),
    );
    const outcomes = await Promise.allSettled(racers);
    const won = outcomes.filter((o) => o.status === "fulfilled");
    const lost = outcomes.filter((o): o is PromiseRejectedResult => o.status === "rejected");
    assert.equal(won.length, 1);
    for (const l of lost) {
      assert.equal((l.reason as ServiceError).code, status.RESOURCE_EXHAUSTED);
      assert.equal(tesseraCodeOf(l.reason as ServiceError), "TESSERA_NO_CAPACITY");
    }
    const devices = (await agentLeases(a100)).filter((l) => l.profileName === "3g.20gb").map((l) => l.migUuid);
    assert.equal(devices.length, 2);
    assert.equal(new Set(devices).size, 2, "no device is leased twice");
  });

  it("refuses a placement past the tenant's quota, and holds nothing for it", async () => {
    await place(request({ tenant: "capped", target: { case: "profile", value: "2g.20gb" } }));
    const over = await refusal(place(request({ tenant: "capped", target: { case: "profile", value: "2g.20gb" } })));
    assert.equal(over.code, status.RESOURCE_EXHAUSTED);
    assert.equal(tesseraCodeOf(over), "TESSERA_QUOTA_EXCEEDED");
    assert.match(over.details, /tenant capped: quota computeSlices is 3 compute slices; 2 in use/);
    const capped = (await scheduler.cluster()).tenants.find((t) => t.tenant === "capped");
    assert.deepEqual([capped?.computeSlices, capped?.computeSlicesQuota], [2, 3]);
  });

  it("says why nothing fits: constraints no node meets", async () => {
    const none = await refusal(place(request({ constraints: { nodeLabels: { rack: "r9" } } })));
    assert.equal(none.code, status.RESOURCE_EXHAUSTED);
    assert.match(none.details, /node-labels/);
    const rdma = await refusal(place(request({ constraints: { gpuModels: ["B200"] } })));
    assert.match(rdma.details, /gpu-model/);
  });

  it("honours needs_rdma: only GPUs whose nearest healthy NIC is within PXB", async () => {
    const e = await schedulerCall(
      client,
      "explain",
      create(ExplainRequestSchema, {
        request: {
          workloadId: "rdma",
          tenant: "team-a",
          target: { case: "shape", value: { memoryMib: 4000n, computeFraction: 0.1 } },
          constraints: { needsRdma: true },
        },
      }),
    );
    const c = await scheduler.cluster();
    const nicOf = (node: string, gpu: number) =>
      c.nodes.find((n) => n.nodeId === node)?.gpus.find((g) => g.index === gpu)?.nic;
    assert.ok(e.candidates.length > 0);
    for (const cand of e.candidates)
      for (const sl of cand.slices) assert.match(nicOf(cand.nodeId, sl.gpuIndex)?.distance ?? "", /^(PIX|PXB)$/);
    // The A100 agent reads the DGX H100 fabric fixture: no NIC near its GPUs.
    assert.ok(e.rejections.some((r) => r.nodeId === "a100" && r.code === "gpu-rdma"));
  });

  it("explains every candidate and every rejection, and reserves nothing", async () => {
    const before = (await scheduler.cluster()).totals?.leases;
    const e = await schedulerCall(
      client,
      "explain",
      create(ExplainRequestSchema, {
        request: { workloadId: "explained", tenant: "team-a", target: { case: "profile", value: "3g.40gb" } },
      }),
    );
    assert.equal(e.policy, "fragmentation");
    assert.equal(e.decision?.nodeId, "h100");
    assert.ok(e.candidates.length >= 2, "several H100 placements are candidates");
    assert.ok(e.candidates.every((c) => c.nodeId === "h100" && c.slices[0]?.action === "carve"));
    // Candidates come best first.
    const growth = e.candidates.map((c) => c.score?.fragmentationGrowth ?? 0);
    assert.equal(growth[0], Math.min(...growth));
    // The A100-40GB has no 3g.40gb: every one of its GPUs says so.
    const a100Rejections = e.rejections.filter((r) => r.nodeId === "a100");
    assert.equal(a100Rejections.length, 8);
    assert.ok(a100Rejections.every((r) => r.code === "no-profile" && /has no profile 3g.40gb/.test(r.detail)));
    assert.deepEqual(e.mappings.map((m) => [m.model, m.profileName]).sort(), [
      ["NVIDIA A100-SXM4-40GB", ""],
      ["NVIDIA H100 80GB HBM3", "3g.40gb"],
    ]);
    assert.equal((await scheduler.cluster()).totals?.leases, before);
  });

  it("reports nodes, GPUs with slot maps, leases and fragmentation", async () => {
    const c = await scheduler.cluster();
    assert.equal(c.notReadyReason, "");
    assert.deepEqual(
      c.nodes.map((n) => [n.nodeId, n.available, n.dynamicMig, n.simulated, n.linkState]),
      [
        ["a100", true, false, true, "watching"],
        ["h100", true, true, true, "watching"],
      ],
    );
    const g0 = c.nodes.find((n) => n.nodeId === "a100")?.gpus[0];
    assert.equal(g0?.slotMap, "[2g.10|1g|1g|3g.20gb    ]");
    assert.equal(g0?.instances.length, 4);
    const h = c.nodes.find((n) => n.nodeId === "h100");
    assert.ok((h?.leases.length ?? 0) >= 5);
    assert.ok(h?.gpus.every((g) => g.fragmentation !== undefined && g.health?.state === 1));
    assert.equal(c.totals?.nodes, 2);
    assert.ok((c.stats?.placed ?? 0n) >= 6n);
    assert.ok((c.stats?.refused.TESSERA_NO_CAPACITY ?? 0n) >= 7n);
  });

  it("streams the cluster on WatchCluster when it changes", async () => {
    const stream = client.watchCluster(create(WatchClusterRequestSchema, { intervalMs: 100 }));
    const seen: WatchClusterResponse[] = [];
    stream.on("data", (m: WatchClusterResponse) => seen.push(m));
    stream.on("error", () => undefined);
    try {
      await eventually(() => (seen.length >= 1 ? true : undefined), 5000, 20);
      const first = seen[0]?.cluster?.version ?? 0n;
      const r = await place(request());
      const update = await eventually(
        () => seen.find((m) => m.cluster?.nodes.some((n) => n.leases.some((l) => l.workloadId === r.workloadId))),
        5000,
        20,
      );
      assert.ok((update.cluster?.version ?? 0n) > first);
    } finally {
      stream.cancel();
    }
  });

  describe("tessera place, release, cluster, explain", () => {
    const at = () => ["--scheduler", scheduler.tcp, "--insecure"];

    it("places and releases, as a table and as JSON", async () => {
      const placed = await runCli([
        "place",
        "cli-1",
        "--tenant",
        "ops",
        "--profile",
        "1g.10gb",
        "--gpu-model",
        "H100",
        ...at(),
      ]);
      assert.equal(placed.code, 0, placed.stderr);
      assert.match(placed.stdout, /^placed: workload cli-1 \(tenant ops\) on node h100/);
      assert.match(placed.stdout, /CUDA_VISIBLE_DEVICES=MIG-/);
      const again = await runCli(["place", "cli-1", "--tenant", "ops", "--profile", "1g.10gb", ...at(), "-o", "json"]);
      const json = JSON.parse(again.stdout) as { created: boolean; nodeId: string; cudaVisibleDevices: string };
      assert.deepEqual([json.created, json.nodeId], [false, "h100"]);
      assert.ok(placed.stdout.includes(json.cudaVisibleDevices));
      const released = await runCli(["release", "cli-1", ...at()]);
      assert.equal(released.stdout.trim(), "released cli-1 (1 slices)");
    });

    it("shows the cluster and explains a request", async () => {
      const cluster = await runCli(["cluster", ...at()]);
      assert.equal(cluster.code, 0, cluster.stderr);
      assert.match(cluster.stdout, /^2\/2 nodes available, 16 GPUs/);
      assert.match(cluster.stdout, /a100 +available +static/);
      assert.match(cluster.stdout, /\[2g\.10\|1g\|1g\|3g\.20gb {4}\]/);
      const json = JSON.parse((await runCli(["cluster", ...at(), "-o", "json"])).stdout) as { nodes: unknown[] };
      assert.equal(json.nodes.length, 2);
      const explained = await runCli(["explain", "cli-2", "--tenant", "ops", "--memory", "30000", ...at()]);
      assert.equal(explained.code, 0, explained.stderr);
      assert.match(explained.stdout, /NVIDIA H100 80GB HBM3 +3g\.40gb/);
      assert.match(explained.stdout, /decision: node h100, GPU \d+ carve 3g\.40gb@\d/);
    });

    it("says what is wrong with a request, with the scheduler's code", async () => {
      const both = await runCli(["place", "x", "--tenant", "t", "--profile", "1g.10gb", "--memory", "5", ...at()]);
      assert.equal(both.code, 1);
      assert.match(both.stderr, /give --profile or a shape/);
      const bad = await runCli(["place", "a+b", "--tenant", "t", "--profile", "1g.10gb", ...at()]);
      assert.equal(bad.code, 1);
      assert.match(bad.stderr, /INVALID_ARGUMENT: workload_id: must not contain '\+'.*\[TESSERA_INVALID_ARGUMENT\]/);
      const none = await runCli([
        "place",
        "big",
        "--tenant",
        "t",
        "--profile",
        "7g.80gb",
        "--label",
        "rack=r2",
        ...at(),
      ]);
      assert.match(none.stderr, /RESOURCE_EXHAUSTED: no GPU can take 7g\.80gb.*\[TESSERA_NO_CAPACITY\]/);
    });
  });

  describe("malformed requests: INVALID_ARGUMENT naming the field", () => {
    const shape = (memoryMib: bigint, computeFraction: number) =>
      ({ case: "shape", value: { memoryMib, computeFraction } }) as const;
    const table: [string, Parameters<typeof request>[0], RegExp][] = [
      ["an empty workload id", { workloadId: "" }, /^workload_id: must not be empty/],
      ["a workload id with the slice separator", { workloadId: "a+1" }, /^workload_id: must not contain '\+'/],
      ["a workload id with a space", { workloadId: "a b" }, /^workload_id: letters, digits/],
      ["a workload id that is too long", { workloadId: "w".repeat(121) }, /^workload_id: at most 120 characters/],
      ["an empty tenant", { tenant: "" }, /^tenant: must not be empty/],
      ["no target", { target: { case: undefined } }, /^target: set profile or shape/],
      ["an empty profile", { target: { case: "profile", value: "" } }, /^profile: must not be empty/],
      ["a profile that is no MIG name", { target: { case: "profile", value: "huge" } }, /^profile: /],
      ["a shape of nothing", { target: shape(0n, 0) }, /^shape: asks for neither memory nor compute/],
      ["a compute fraction above 1", { target: shape(1n, 1.5) }, /^shape\.compute_fraction: must be within 0…1/],
      ["a NaN compute fraction", { target: shape(1n, Number.NaN) }, /^shape\.compute_fraction: /],
      ["a negative compute fraction", { target: shape(1n, -0.1) }, /^shape\.compute_fraction: /],
      ["an enormous memory", { target: shape(2n ** 60n, 0.1) }, /^shape\.memory_mib: at most/],
      ["count 65", { count: 65 }, /^count: at most 64, got 65/],
      [
        "too many GPU models",
        { constraints: { gpuModels: Array.from({ length: 17 }, (_, i) => `m${i}`) } },
        /^constraints\.gpu_models: at most 16 entries/,
      ],
      ["an empty GPU model", { constraints: { gpuModels: [""] } }, /^constraints\.gpu_models\[0\]: must not be empty/],
      [
        "a control character in a label",
        { constraints: { nodeLabels: { "a\u0001": "b" } } },
        /^constraints\.node_labels: control characters/,
      ],
    ];
    for (const [name, init, message] of table) {
      it(`Place refuses ${name}`, async () => {
        const err = await refusal(place(request(init)));
        assert.equal(err.code, status.INVALID_ARGUMENT, err.details);
        assert.match(err.details, message);
      });
    }

    it("Explain refuses a missing request and names nested fields", async () => {
      const none = await refusal(schedulerCall(client, "explain", create(ExplainRequestSchema, {})));
      assert.equal(none.code, status.INVALID_ARGUMENT);
      assert.match(none.details, /^request: must be set/);
      const nested = await refusal(
        schedulerCall(client, "explain", create(ExplainRequestSchema, { request: request({ tenant: "" }) })),
      );
      assert.match(nested.details, /^request\.tenant: must not be empty/);
    });

    it("ReleaseWorkload and RegisterNode refuse bad ids and addresses", async () => {
      const cases: [Promise<unknown>, RegExp][] = [
        [
          schedulerCall(client, "releaseWorkload", create(ReleaseWorkloadRequestSchema, { workloadId: "" })),
          /^workload_id: must not be empty/,
        ],
        [
          schedulerCall(
            client,
            "releaseWorkload",
            create(ReleaseWorkloadRequestSchema, { workloadId: "x", tenant: "bad tenant" }),
          ),
          /^tenant: letters, digits/,
        ],
        [
          schedulerCall(client, "registerNode", create(RegisterNodeRequestSchema, { address: "127.0.0.1:1" })),
          /^node_id: must not be empty/,
        ],
        [
          schedulerCall(client, "registerNode", create(RegisterNodeRequestSchema, { nodeId: "n", address: "nowhere" })),
          /^address: expected host:port or unix:\/\/\/path/,
        ],
        [
          schedulerCall(
            client,
            "registerNode",
            create(RegisterNodeRequestSchema, { nodeId: "n", address: "unix://relative.sock" }),
          ),
          /^address: a unix socket address needs an absolute path/,
        ],
        [
          schedulerCall(
            client,
            "registerNode",
            create(RegisterNodeRequestSchema, { nodeId: "n", address: "10.1.2.3:7443" }),
          ),
          /^address: 10\.1\.2\.3:7443 is not on loopback/,
        ],
      ];
      for (const [p, message] of cases) {
        const err = await refusal(p);
        assert.equal(err.code, status.INVALID_ARGUMENT, err.details);
        assert.match(err.details, message);
      }
    });

    it("WatchCluster refuses an interval below 100 ms", async () => {
      const stream = client.watchCluster(create(WatchClusterRequestSchema, { intervalMs: 50 }));
      const err = await new Promise<ServiceError>((resolve) => {
        stream.on("error", resolve);
        stream.on("data", () => undefined);
      });
      assert.equal(err.code, status.INVALID_ARGUMENT);
      assert.match(err.details, /^interval_ms: /);
    });
  });
});
