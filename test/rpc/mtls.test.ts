import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { create } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import {
  AllocateRequestSchema,
  ApplyMigLayoutRequestSchema,
  GetNodeRequestSchema,
  ReleaseRequestSchema,
} from "../../src/gen/tessera/v1/agent_pb.js";
import { call, createAgentClient, type NodeAgentClient } from "../../src/rpc/client.js";
import { decodeHealthResponse, encodeHealthRequest, healthDefinition, ServingStatus } from "../../src/rpc/health.js";
import { type AgentProcess, removeDir, startAgent } from "../agent/harness.js";
import { runCli } from "../cli/run-cli.js";
import { createSimWorld, type SimWorld } from "../nvml/sim-world.js";
import { makePki, type TestPki } from "./certs.js";

let world: SimWorld;
let pki: TestPki;
let agent: AgentProcess;
let address: string;
const clients: NodeAgentClient[] = [];

const CLIENTS = {
  "viewer-1": [],
  "scheduler-1": [],
  "operator-1": [],
  "admin-1": [],
  "nobody-1": [],
  "workload-pod": ["URI:spiffe://tessera/scheduler"],
} as const;

before(async () => {
  world = createSimWorld("dgx-h100");
  pki = makePki(CLIENTS);
  const config = join(pki.dir, "agent.yaml");
  writeFileSync(
    config,
    [
      "tls:",
      `  cert: ${pki.server.cert}`,
      `  key: ${pki.server.key}`,
      `  clientCa: ${pki.ca}`,
      "auth:",
      "  rules:",
      "    - { cn: viewer-1, role: viewer }",
      "    - { cn: scheduler-1, role: scheduler }",
      "    - { cn: operator-1, role: operator }",
      "    - { cn: admin-1, role: admin }",
      '    - { uri: "spiffe://tessera/scheduler", role: scheduler }',
      "",
    ].join("\n"),
  );
  agent = await startAgent({ tcp: "custom", args: ["--config", config, "--listen", "127.0.0.1:0"] });
  address = (agent.tcp as string).replace("127.0.0.1", "localhost");
});

after(async () => {
  for (const c of clients) c.close();
  await agent?.stop();
  if (agent) removeDir(agent.dir);
  if (pki) removeDir(pki.dir);
  world?.dispose();
});

function tlsClient(who: keyof typeof CLIENTS | "rogue" | "anonymous"): NodeAgentClient {
  const ca = readFileSync(pki.ca);
  const pair = who === "rogue" ? pki.rogue : who === "anonymous" ? undefined : pki.clients[who];
  const creds = pair
    ? grpc.credentials.createSsl(ca, readFileSync(pair.key), readFileSync(pair.cert))
    : grpc.credentials.createSsl(ca);
  const c = createAgentClient(address, creds);
  clients.push(c);
  return c;
}

async function codeOf(p: Promise<unknown>): Promise<number> {
  try {
    await p;
    return grpc.status.OK;
  } catch (err) {
    return (err as grpc.ServiceError).code;
  }
}

const SPEC = "version: v1\nmig-configs:\n  none:\n    - devices: [6]\n      mig-enabled: false\n";

const calls = {
  read: (c: NodeAgentClient) => call(c, "getNode", create(GetNodeRequestSchema, {})),
  leases: (c: NodeAgentClient) => call(c, "release", create(ReleaseRequestSchema, { workloadId: "nobody-holds-this" })),
  mig: (c: NodeAgentClient) =>
    call(
      c,
      "applyMigLayout",
      create(ApplyMigLayoutRequestSchema, { specYaml: SPEC, configName: "none", dryRun: true }),
    ),
};

describe("mTLS and roles", () => {
  const table: [keyof typeof CLIENTS, keyof typeof calls, number][] = [
    ["viewer-1", "read", grpc.status.OK],
    ["viewer-1", "leases", grpc.status.PERMISSION_DENIED],
    ["viewer-1", "mig", grpc.status.PERMISSION_DENIED],
    ["scheduler-1", "read", grpc.status.OK],
    ["scheduler-1", "leases", grpc.status.OK],
    ["scheduler-1", "mig", grpc.status.PERMISSION_DENIED],
    ["operator-1", "read", grpc.status.OK],
    ["operator-1", "leases", grpc.status.PERMISSION_DENIED],
    ["operator-1", "mig", grpc.status.OK],
    ["admin-1", "read", grpc.status.OK],
    ["admin-1", "leases", grpc.status.OK],
    ["admin-1", "mig", grpc.status.OK],
    ["workload-pod", "leases", grpc.status.OK],
    ["workload-pod", "mig", grpc.status.PERMISSION_DENIED],
    ["nobody-1", "read", grpc.status.PERMISSION_DENIED],
  ];
  for (const [who, what, expected] of table) {
    it(`${who} → ${what}: ${grpc.status[expected]}`, async () => {
      assert.equal(grpc.status[await codeOf(calls[what](tlsClient(who)))], grpc.status[expected]);
    });
  }

  it("refuses callers without a client certificate, or with one from another CA, as UNAUTHENTICATED", async () => {
    for (const who of ["anonymous", "rogue"] as const) {
      let err: grpc.ServiceError | undefined;
      try {
        await calls.read(tlsClient(who));
      } catch (e) {
        err = e as grpc.ServiceError;
      }
      assert.equal(err?.code, grpc.status.UNAUTHENTICATED, `${who}: ${err?.details}`);
      assert.match(err?.details ?? "", /client certificate/);
    }
  });

  it("refuses plaintext on the TLS listener", async () => {
    const c = createAgentClient(agent.tcp as string, grpc.credentials.createInsecure());
    clients.push(c);
    assert.equal(await codeOf(call(c, "getNode", create(GetNodeRequestSchema, {}), 3000)), grpc.status.UNAVAILABLE);
  });

  it("ignores a role header the client sends itself", async () => {
    const c = tlsClient("viewer-1");
    const md = new grpc.Metadata();
    md.set("x-tessera-role", "admin");
    const code = await new Promise<number>((resolve) => {
      c.allocate(
        create(AllocateRequestSchema, {
          workloadId: "w",
          tenant: "t",
          target: { case: "deviceUuid", value: "GPU-12345678-aaaa" },
        }),
        md,
        {},
        (err) => resolve(err?.code ?? 0),
      );
    });
    assert.equal(code, grpc.status.PERMISSION_DENIED);
  });

  it("answers health checks to any verified client", async () => {
    const Health = grpc.makeGenericClientConstructor(healthDefinition, "Health");
    const pair = pki.clients["nobody-1"] as { cert: string; key: string };
    const h = new Health(
      address,
      grpc.credentials.createSsl(readFileSync(pki.ca), readFileSync(pair.key), readFileSync(pair.cert)),
    ) as unknown as { Check: (r: Buffer, cb: (e: Error | null, r: Buffer) => void) => void; close: () => void };
    const status = await new Promise<number>((resolve, reject) =>
      h.Check(encodeHealthRequest(""), (e, r) => (e ? reject(e) : resolve(decodeHealthResponse(r)))),
    );
    h.close();
    assert.equal(status, ServingStatus.SERVING);
  });

  it("lets `tessera inspect --agent` connect with --ca, --cert and --key", async () => {
    const pair = pki.clients["viewer-1"] as { cert: string; key: string };
    const r = await runCli([
      "inspect",
      "--agent",
      address,
      "--ca",
      pki.ca,
      "--cert",
      pair.cert,
      "--key",
      pair.key,
      "-o",
      "json",
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal((JSON.parse(r.stdout) as { gpus: unknown[] }).gpus.length, 8);
  });

  it("refuses plaintext TCP off loopback, and TCP without TLS settings, before starting", async () => {
    const offLoopback = await startAgent({
      tcp: "custom",
      expectFailure: true,
      args: ["--listen", "0.0.0.0:0", "--dev-insecure"],
    });
    assert.equal(await offLoopback.exited, 2);
    assert.match((offLoopback as unknown as { stderr: string }).stderr, /devInsecure.*loopback/);
    removeDir(offLoopback.dir);
    const noTls = await startAgent({ tcp: "custom", expectFailure: true, args: ["--listen", "127.0.0.1:0"] });
    assert.equal(await noTls.exited, 2);
    assert.match(
      (noTls as unknown as { stderr: string }).stderr,
      /needs mTLS: set tls\.cert, tls\.key and tls\.clientCa/,
    );
    removeDir(noTls.dir);
  });
});
