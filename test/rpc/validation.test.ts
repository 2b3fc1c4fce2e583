import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { create } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import {
  AllocateRequestSchema,
  ApplyMigLayoutRequestSchema,
  PlanMigLayoutRequestSchema,
  ReleaseRequestSchema,
  WatchNodeRequestSchema,
} from "../../src/gen/tessera/v1/agent_pb.js";
import { call, type NodeAgentClient } from "../../src/rpc/client.js";
import { type AgentProcess, removeDir, startAgent } from "../agent/harness.js";
import { createSimWorld, type SimWorld } from "../nvml/sim-world.js";

let world: SimWorld;
let agent: AgentProcess;
let readOnly: AgentProcess;
let client: NodeAgentClient;

before(async () => {
  world = createSimWorld("dgx-h100");
  [agent, readOnly] = await Promise.all([
    startAgent({ args: ["--dynamic-mig"] }),
    startAgent({ args: ["--read-only", "--dynamic-mig"] }),
  ]);
  client = agent.client();
});

after(async () => {
  await Promise.all([agent?.stop(), readOnly?.stop()]);
  for (const a of [agent, readOnly]) if (a) removeDir(a.dir);
  world?.dispose();
});

async function failure(p: Promise<unknown>): Promise<grpc.ServiceError> {
  try {
    await p;
  } catch (err) {
    return err as grpc.ServiceError;
  }
  assert.fail("expected the call to fail");
}

const GPU = "GPU-019afe84-3545-4e39-8428-e732c010e7ee";
const alloc = (init: Parameters<typeof create<typeof AllocateRequestSchema>>[1]) => (c: NodeAgentClient) =>
  call(c, "allocate", create(AllocateRequestSchema, init));
const newInstance = (value: { gpuUuid: string; profile: string; placementStart?: number }) =>
  alloc({ workloadId: "w", tenant: "t", target: { case: "newInstance", value } });

/** [what, call, status, field the message must name] */
const MALFORMED: [string, (c: NodeAgentClient) => Promise<unknown>, grpc.status, RegExp][] = [
  [
    "Allocate without a workload id",
    alloc({ tenant: "t" }),
    grpc.status.INVALID_ARGUMENT,
    /^workload_id: must not be empty/,
  ],
  [
    "Allocate with spaces in the workload id",
    alloc({ workloadId: "a b", tenant: "t" }),
    grpc.status.INVALID_ARGUMENT,
    /^workload_id:/,
  ],
  [
    "Allocate with a 200-character workload id",
    alloc({ workloadId: "w".repeat(200), tenant: "t" }),
    grpc.status.INVALID_ARGUMENT,
    /^workload_id: at most 128/,
  ],
  ["Allocate without a tenant", alloc({ workloadId: "w" }), grpc.status.INVALID_ARGUMENT, /^tenant: must not be empty/],
  [
    "Allocate without a target",
    alloc({ workloadId: "w", tenant: "t" }),
    grpc.status.INVALID_ARGUMENT,
    /^target: set device_uuid or new_instance/,
  ],
  [
    "Allocate with a malformed device UUID",
    alloc({ workloadId: "w", tenant: "t", target: { case: "deviceUuid", value: "nvidia0" } }),
    grpc.status.INVALID_ARGUMENT,
    /^device_uuid:/,
  ],
  [
    "new instance with a malformed GPU UUID",
    newInstance({ gpuUuid: "MIG-12345678-aaaa", profile: "1g.10gb" }),
    grpc.status.INVALID_ARGUMENT,
    /^new_instance\.gpu_uuid:/,
  ],
  [
    "new instance without a profile",
    newInstance({ gpuUuid: GPU, profile: "" }),
    grpc.status.INVALID_ARGUMENT,
    /^new_instance\.profile: must not be empty/,
  ],
  [
    "new instance with a malformed profile",
    newInstance({ gpuUuid: GPU, profile: "3x.40gb" }),
    grpc.status.INVALID_ARGUMENT,
    /^new_instance\.profile: invalid MIG profile/,
  ],
  [
    "new instance with a compute-instance profile",
    newInstance({ gpuUuid: GPU, profile: "1c.3g.40gb" }),
    grpc.status.INVALID_ARGUMENT,
    /^new_instance\.profile:/,
  ],
  [
    "new instance with a placement past any GPU",
    newInstance({ gpuUuid: GPU, profile: "1g.10gb", placementStart: 99 }),
    grpc.status.INVALID_ARGUMENT,
    /^new_instance\.placement_start: at most 15/,
  ],
  [
    "Release without a workload id",
    (c) => call(c, "release", create(ReleaseRequestSchema, {})),
    grpc.status.INVALID_ARGUMENT,
    /^workload_id:/,
  ],
  [
    "PlanMigLayout without a spec",
    (c) => call(c, "planMigLayout", create(PlanMigLayoutRequestSchema, {})),
    grpc.status.INVALID_ARGUMENT,
    /^spec_yaml: must not be empty/,
  ],
  [
    "ApplyMigLayout with a blank spec",
    (c) => call(c, "applyMigLayout", create(ApplyMigLayoutRequestSchema, { specYaml: "  \n" })),
    grpc.status.INVALID_ARGUMENT,
    /^spec_yaml:/,
  ],
  [
    "ApplyMigLayout with a control character in config_name",
    (c) =>
      call(
        c,
        "applyMigLayout",
        create(ApplyMigLayoutRequestSchema, { specYaml: "version: v1\n", configName: "a\u0001" }),
      ),
    grpc.status.INVALID_ARGUMENT,
    /^config_name:/,
  ],
  [
    "ApplyMigLayout with a spec that is not YAML",
    (c) =>
      call(
        c,
        "applyMigLayout",
        create(ApplyMigLayoutRequestSchema, {
          specYaml: "version: v1\nmig-configs: [\n",
          specName: "bad.yaml",
          dryRun: true,
        }),
      ),
    grpc.status.INVALID_ARGUMENT,
    /^bad\.yaml:\d+:\d+: /,
  ],
  [
    "ApplyMigLayout naming a config the spec lacks",
    (c) =>
      call(
        c,
        "applyMigLayout",
        create(ApplyMigLayoutRequestSchema, {
          specYaml: "version: v1\nmig-configs:\n  a:\n    - devices: all\n      mig-enabled: false\n",
          configName: "b",
          dryRun: true,
        }),
      ),
    grpc.status.INVALID_ARGUMENT,
    /mig-config 'b' is not in the spec/,
  ],
  [
    "Allocate of a device that does not exist",
    alloc({
      workloadId: "w",
      tenant: "t",
      target: { case: "deviceUuid", value: "MIG-00000000-0000-0000-0000-000000000000" },
    }),
    grpc.status.NOT_FOUND,
    /no GPU or MIG device/,
  ],
  [
    "new instance on a GPU with MIG off",
    newInstance({ gpuUuid: GPU, profile: "1g.10gb" }),
    grpc.status.FAILED_PRECONDITION,
    /MIG disabled/,
  ],
];

describe("request validation", () => {
  for (const [what, rpc, code, message] of MALFORMED) {
    it(`${what}: ${grpc.status[code]}`, async () => {
      const err = await failure(rpc(client));
      assert.equal(grpc.status[err.code], grpc.status[code], err.details);
      assert.match(err.details, message);
      assert.equal(err.metadata.get("tessera-error-code").length, 1, "the Tessera code travels in the trailers");
    });
  }

  it("rejects a watch interval outside 100 ms – 1 h", async () => {
    for (const intervalMs of [1, 99, 3_600_001]) {
      const stream = client.watchNode(create(WatchNodeRequestSchema, { intervalMs }));
      const err = await new Promise<grpc.ServiceError>((resolve) => stream.on("error", resolve));
      assert.equal(err.code, grpc.status.INVALID_ARGUMENT);
      assert.match(err.details, /^interval_ms:/);
    }
  });
});

describe("read-only mode", () => {
  it("refuses every MIG change and instance creation with FAILED_PRECONDITION saying so", async () => {
    const ro = readOnly.client();
    const spec =
      "version: v1\nmig-configs:\n  enable5:\n    - devices: [5]\n      mig-enabled: true\n      mig-devices: {}\n";
    const apply = await failure(
      call(ro, "applyMigLayout", create(ApplyMigLayoutRequestSchema, { specYaml: spec, configName: "enable5" })),
    );
    assert.equal(apply.code, grpc.status.FAILED_PRECONDITION);
    assert.match(apply.details, /read-only mode/);
    const dry = await call(
      ro,
      "applyMigLayout",
      create(ApplyMigLayoutRequestSchema, { specYaml: spec, configName: "enable5", dryRun: true }),
    );
    assert.equal(dry.plan?.feasible, true, "a dry run changes nothing and is allowed");
    const whole = await call(
      ro,
      "allocate",
      create(AllocateRequestSchema, { workloadId: "ro-1", tenant: "t", target: { case: "deviceUuid", value: GPU } }),
    );
    assert.equal(whole.created, true, "leasing what exists makes no NVML change");
  });
});
