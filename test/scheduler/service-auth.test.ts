// Who may call the scheduler: mTLS client certificates mapped to roles (node, viewer, tenant,
// admin) by config rules, narrowed to node ids and tenants. A real scheduler on 127.0.0.1:0 with
// test certificates; no agents are needed to see the refusals.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { create } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { service as healthService } from "grpc-health-check";
import {
  GetClusterRequestSchema,
  PlaceRequestSchema,
  RegisterNodeRequestSchema,
  ReleaseWorkloadRequestSchema,
} from "../../src/gen/tessera/v1/scheduler_pb.js";
import { createSchedulerClient, type SchedulerClient, schedulerCall } from "../../src/scheduler/client.js";
import { finishSchedulerConfig, parseSchedulerConfig } from "../../src/scheduler/config.js";
import { Scheduler } from "../../src/scheduler/daemon.js";
import { createSchedulerLogger } from "../../src/scheduler/logger.js";
import { removeDir } from "../agent/harness.js";
import { makePki, type TestPki } from "../rpc/certs.js";

const CLIENTS = {
  "agent-n1": [],
  "node-any": [],
  "viewer-1": [],
  "team-a-ci": [],
  "tenant-any": [],
  "admin-1": [],
  "nobody-1": [],
} as const;

let pki: TestPki;
let scheduler: Scheduler;
let address: string;
const clients: grpc.Client[] = [];

before(async () => {
  pki = makePki(CLIENTS);
  const text = [
    "listen:",
    "  tcp: 127.0.0.1:0",
    '  socket: ""',
    "tls:",
    `  cert: ${pki.server.cert}`,
    `  key: ${pki.server.key}`,
    `  clientCa: ${pki.ca}`,
    "auth:",
    "  rules:",
    "    - { cn: agent-n1, role: node, nodes: [n1] }",
    "    - { cn: node-any, role: node }",
    "    - { cn: viewer-1, role: viewer }",
    "    - { cn: team-a-ci, role: tenant, tenants: [team-a] }",
    "    - { cn: tenant-any, role: tenant }",
    "    - { cn: admin-1, role: admin }",
    "agents:",
    "  insecure: true",
    "placement:",
    "  startupGraceMs: 0",
    "",
  ].join("\n");
  const config = finishSchedulerConfig(parseSchedulerConfig(text, join(pki.dir, "scheduler.yaml")), {});
  scheduler = new Scheduler({ config, log: createSchedulerLogger({ level: "silent" }) });
  const endpoints = await scheduler.start();
  address = (endpoints.tcp as string).replace("127.0.0.1", "localhost");
});

after(async () => {
  for (const c of clients) c.close();
  await scheduler?.stop("test over");
  if (pki) removeDir(pki.dir);
});

function as(who: keyof typeof CLIENTS | "rogue" | "anonymous"): SchedulerClient {
  const ca = readFileSync(pki.ca);
  const pair = who === "rogue" ? pki.rogue : who === "anonymous" ? undefined : pki.clients[who];
  const creds = pair
    ? grpc.credentials.createSsl(ca, readFileSync(pair.key), readFileSync(pair.cert))
    : grpc.credentials.createSsl(ca);
  const c = createSchedulerClient(address, creds);
  clients.push(c);
  return c;
}

async function outcome(p: Promise<unknown>): Promise<{ code: grpc.status; details: string }> {
  try {
    await p;
    return { code: grpc.status.OK, details: "" };
  } catch (err) {
    const e = err as grpc.ServiceError;
    return { code: e.code, details: e.details };
  }
}

const cluster = (c: SchedulerClient) => schedulerCall(c, "getCluster", create(GetClusterRequestSchema, {}), 5000);
const register = (c: SchedulerClient, nodeId: string) =>
  schedulerCall(c, "registerNode", create(RegisterNodeRequestSchema, { nodeId, address: "127.0.0.1:9" }), 5000);
const place = (c: SchedulerClient, tenant: string) =>
  schedulerCall(
    c,
    "place",
    create(PlaceRequestSchema, { workloadId: `w-${tenant}`, tenant, target: { case: "profile", value: "1g.10gb" } }),
    5000,
  );

describe("scheduler auth", () => {
  it("refuses callers without a certificate from the client CA: UNAUTHENTICATED", async () => {
    for (const who of ["anonymous", "rogue"] as const) {
      const r = await outcome(cluster(as(who)));
      assert.ok(
        r.code === grpc.status.UNAUTHENTICATED || r.code === grpc.status.UNAVAILABLE,
        `${who}: ${grpc.status[r.code]} ${r.details}`,
      );
      if (who === "anonymous") assert.equal(r.code, grpc.status.UNAUTHENTICATED, r.details);
    }
  });

  it("refuses a certificate no rule maps to a role: PERMISSION_DENIED", async () => {
    const r = await outcome(cluster(as("nobody-1")));
    assert.equal(r.code, grpc.status.PERMISSION_DENIED);
    assert.match(r.details, /cn=nobody-1 has no role on this scheduler/);
  });

  it("lets a viewer read, and nothing else", async () => {
    const c = as("viewer-1");
    assert.equal((await outcome(cluster(c))).code, grpc.status.OK);
    const p = await outcome(place(c, "team-a"));
    assert.equal(p.code, grpc.status.PERMISSION_DENIED);
    assert.match(p.details, /role viewer, which may not call \/tessera\.v1\.SchedulerService\/Place \(needs place\)/);
    assert.equal((await outcome(register(c, "n1"))).code, grpc.status.PERMISSION_DENIED);
  });

  it("lets a node register only the node ids its rule names, and read nothing", async () => {
    const n1 = as("agent-n1");
    const ok = await register(n1, "n1");
    assert.ok(ok.renewIntervalMs > 0 && ok.firstRegistration);
    const other = await outcome(register(n1, "n2"));
    assert.equal(other.code, grpc.status.PERMISSION_DENIED);
    assert.match(other.details, /cn=agent-n1 may register nodes n1 only, not n2/);
    assert.equal((await outcome(cluster(n1))).code, grpc.status.PERMISSION_DENIED);
    assert.equal((await outcome(register(as("node-any"), "n7"))).code, grpc.status.OK);
  });

  it("lets a tenant place and release for its own tenants only", async () => {
    const ci = as("team-a-ci");
    // Allowed through: nothing has a snapshot, so there is no capacity.
    const own = await outcome(place(ci, "team-a"));
    assert.equal(own.code, grpc.status.RESOURCE_EXHAUSTED, own.details);
    const other = await outcome(place(ci, "team-b"));
    assert.equal(other.code, grpc.status.PERMISSION_DENIED);
    assert.match(other.details, /cn=team-a-ci may act for tenants team-a only, not team-b/);
    const rel = await outcome(
      schedulerCall(ci, "releaseWorkload", create(ReleaseWorkloadRequestSchema, { workloadId: "x", tenant: "team-b" })),
    );
    assert.equal(rel.code, grpc.status.PERMISSION_DENIED);
    assert.equal((await outcome(place(as("tenant-any"), "team-b"))).code, grpc.status.RESOURCE_EXHAUSTED);
    assert.equal((await outcome(register(ci, "n1"))).code, grpc.status.PERMISSION_DENIED);
  });

  it("lets an admin do everything, and any authenticated caller check health", async () => {
    const admin = as("admin-1");
    assert.equal((await outcome(cluster(admin))).code, grpc.status.OK);
    assert.equal((await outcome(register(admin, "n9"))).code, grpc.status.OK);
    assert.equal((await outcome(place(admin, "anyone"))).code, grpc.status.RESOURCE_EXHAUSTED);
    const Health = grpc.makeGenericClientConstructor(healthService, "Health");
    const ca = readFileSync(pki.ca);
    const pair = pki.clients["node-any"] as { key: string; cert: string };
    const h = new Health(address, grpc.credentials.createSsl(ca, readFileSync(pair.key), readFileSync(pair.cert)));
    clients.push(h);
    const check = (h as unknown as { check: (r: object, cb: (e: Error | null, r: { status: string }) => void) => void })
      .check;
    const res = await new Promise<{ status: string }>((resolve, reject) => {
      check.call(h, { service: "tessera.v1.SchedulerService" }, (e, r) => (e ? reject(e) : resolve(r)));
    });
    assert.equal(res.status, "SERVING");
  });
});
