import assert from "node:assert/strict";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { create } from "@bufbuild/protobuf";
import {
  AllocateRequestSchema,
  GetNodeRequestSchema,
  ListLeasesRequestSchema,
  ReleaseRequestSchema,
  WatchNodeRequestSchema,
  type WatchNodeResponse,
} from "../../src/gen/tessera/v1/agent_pb.js";
import { CHECKPOINT_FILE, writeCheckpoint } from "../../src/ledger/checkpoint.js";
import type { Lease } from "../../src/ledger/types.js";
import { type Nvml, openNvml } from "../../src/nvml/index.js";
import { call } from "../../src/rpc/client.js";
import { createSimWorld, type SimWorld } from "../nvml/sim-world.js";
import { type AgentProcess, eventually, removeDir, startAgent } from "./harness.js";

let world: SimWorld;
let nvml: Nvml;
const agents: AgentProcess[] = [];

before(async () => {
  world = createSimWorld("dgx-h100");
  nvml = await openNvml();
  for (const i of [0, 2, 3]) nvml.device(i).mig.setMode(true);
  const g3 = nvml.device(3);
  g3.mig.createGpuInstance(9, { start: 0, size: 4 }).createComputeInstance(2);
});

after(async () => {
  for (const a of agents) {
    await a.stop("SIGKILL");
    removeDir(a.dir);
  }
  nvml?.shutdown();
  world?.dispose();
});

async function launch(options: Parameters<typeof startAgent>[0] = {}): Promise<AgentProcess> {
  const a = await startAgent({
    ...options,
    args: ["--dynamic-mig", "--sampling-interval", "200", ...(options.args ?? [])],
  });
  agents.push(a);
  return a;
}

function freshStateDir(name: string): string {
  const dir = join(agents[0]?.dir ?? world.dir, name);
  mkdirSync(dir, { recursive: true });
  return dir;
}

describe("restarts", () => {
  it("keeps every lease through a SIGKILL between Allocate and Release", async () => {
    const a = await launch();
    const client = a.client();
    const gpu0 = (await call(client, "getNode", create(GetNodeRequestSchema, {}))).node?.gpus[0]?.uuid as string;
    const mig3 = (await call(client, "getNode", create(GetNodeRequestSchema, {}))).node?.gpus[3]?.instances[0]
      ?.computeInstances[0]?.uuid as string;
    const dynamic = await call(
      client,
      "allocate",
      create(AllocateRequestSchema, {
        workloadId: "train-1",
        tenant: "ml",
        target: { case: "newInstance", value: { gpuUuid: gpu0, profile: "2g.20gb" } },
      }),
    );
    const existing = await call(
      client,
      "allocate",
      create(AllocateRequestSchema, {
        workloadId: "infer-1",
        tenant: "web",
        target: { case: "deviceUuid", value: mig3 },
      }),
    );
    // No graceful anything: the replies above are all the agent got to do.
    assert.equal(await a.stop("SIGKILL"), "SIGKILL");

    const b = await launch({ stateDir: a.stateDir });
    const leases = await call(b.client(), "listLeases", create(ListLeasesRequestSchema, {}));
    assert.deepEqual(leases.leases.map((l) => l.workloadId).sort(), ["infer-1", "train-1"]);
    assert.deepEqual(
      leases.leases.find((l) => l.workloadId === "train-1"),
      dynamic.lease,
    );
    assert.deepEqual(
      leases.leases.find((l) => l.workloadId === "infer-1"),
      existing.lease,
    );
    const again = await call(
      b.client(),
      "allocate",
      create(AllocateRequestSchema, {
        workloadId: "train-1",
        tenant: "ml",
        target: { case: "newInstance", value: { gpuUuid: gpu0, profile: "2g.20gb" } },
      }),
    );
    assert.equal(again.created, false, "the restarted agent knows the workload already holds it");
    const released = await call(b.client(), "release", create(ReleaseRequestSchema, { workloadId: "train-1" }));
    assert.deepEqual([released.released, released.instanceDestroyed], [true, true]);
    await b.stop();
  });

  it("cleans up an instance created for an allocation that a crash interrupted, and drops leases whose device vanished", async () => {
    const stateDir = freshStateDir("interrupted");
    const gpu2 = nvml.device(2);
    const gi = gpu2.mig.createGpuInstance(19, { start: 3, size: 1 });
    gi.createComputeInstance(0);
    const gpu2Uuid = gpu2.uuid();
    const vanished: Lease = {
      workloadId: "gone-1",
      tenant: "t",
      gpuIndex: 2,
      gpuUuid: gpu2Uuid,
      migUuid: "MIG-00000000-0000-0000-0000-000000000000",
      gpuInstanceId: 9,
      computeInstanceId: 0,
      profileId: undefined,
      profileName: "1g.10gb",
      placement: { start: 6, size: 1 },
      createdAtMs: Date.now() - 60_000,
      instanceCreated: false,
    };
    await writeCheckpoint(
      join(stateDir, CHECKPOINT_FILE),
      {
        leases: new Map([[vanished.workloadId, vanished]]),
        pending: new Map([
          [
            "half-made",
            {
              workloadId: "half-made",
              tenant: "t",
              gpuIndex: 2,
              gpuUuid: gpu2Uuid,
              profileId: 19,
              profileName: "1g.10gb",
              placement: { start: 3, size: 1 },
              startedAtMs: Date.now() - 1000,
            },
          ],
        ]),
        orphans: [],
      },
      Date.now(),
    );
    const a = await launch({ stateDir });
    const leases = await call(a.client(), "listLeases", create(ListLeasesRequestSchema, {}));
    assert.deepEqual(leases.leases, []);
    assert.equal(nvml.device(2).mig.gpuInstances().length, 0, "the half-made instance was destroyed");
    await a.waitForLog(
      (l) => typeof l.msg === "string" && l.msg.includes("lease of workload gone-1") && l.msg.includes("lost"),
    );
    const checkpoint = JSON.parse(readFileSync(join(stateDir, CHECKPOINT_FILE), "utf8")) as {
      payload: { pending: unknown[] };
    };
    assert.deepEqual(checkpoint.payload.pending, []);
    await a.stop();
  });

  it("refuses to start on a corrupt checkpoint, naming it, unless told to set it aside", async () => {
    const stateDir = freshStateDir("corrupt");
    const path = join(stateDir, CHECKPOINT_FILE);
    await writeCheckpoint(path, { leases: new Map(), pending: new Map(), orphans: [] }, Date.now());
    writeFileSync(
      path,
      readFileSync(path, "utf8")
        .replace('"leases": []', '"leases": [ ]')
        .replace(/"savedAtMs": \d+/, '"savedAtMs": 1'),
    );
    const refused = await startAgent({ stateDir, expectFailure: true, args: ["--dynamic-mig"] });
    agents.push(refused);
    assert.equal(await refused.exited, 1);
    const fatal = refused.logs.find((l) => l.level === "fatal");
    assert.match(
      String((fatal?.err as { message?: string })?.message),
      new RegExp(`${CHECKPOINT_FILE}.*checksum mismatch.*--discard-corrupt-leases`),
    );
    const a = await launch({ stateDir, args: ["--discard-corrupt-leases"] });
    assert.ok(
      readdirSync(stateDir).some((f) => f.startsWith(`${CHECKPOINT_FILE}.corrupt-`)),
      "the corrupt file was kept aside",
    );
    await a.stop();
  });

  it("stops cleanly on SIGTERM: watch streams end with OK, exit status 0", async () => {
    const a = await launch();
    const stream = a.client().watchNode(create(WatchNodeRequestSchema, { intervalMs: 200 }));
    const got: WatchNodeResponse[] = [];
    stream.on("data", (m: WatchNodeResponse) => got.push(m));
    const status = new Promise<number>((resolve) => stream.on("status", (s: { code: number }) => resolve(s.code)));
    stream.on("error", () => undefined);
    await eventually(() => (got.length >= 2 ? true : undefined));
    assert.equal(await a.stop("SIGTERM"), 0);
    assert.equal(await status, 0);
    assert.ok(
      a.logs.some((l) => l.msg === "stopped"),
      "logged its stop",
    );
    assert.equal(existsSync(a.socket as string), false, "the socket is removed");
  });

  it("reloads the log level and health thresholds on SIGHUP", async () => {
    const dir = freshStateDir("reload");
    const config = join(dir, "agent.yaml");
    writeFileSync(config, "log:\n  level: debug\nhealth:\n  xidHoldMs: 60000\n");
    const a = await launch({ args: ["--config", config], logLevel: null });
    writeFileSync(
      config,
      "log:\n  level: info\nhealth:\n  xidHoldMs: 1000\n  temperatureMarginC: 3\nwatch:\n  maxWatchers: 10\n",
    );
    a.child.kill("SIGHUP");
    const line = await a.waitForLog((l) => l.msg === "config reloaded");
    assert.equal(line.logLevel, "info");
    assert.deepEqual(line.health, { xidHoldMs: 1000, temperatureMarginC: 3 });
    assert.deepEqual(line.needRestart, ["watch"]);
    await a.stop();
  });
});
