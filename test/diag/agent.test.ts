// `tessera diag --agent`: the same checks run inside an agent and streamed over RunDiagnostics.
// The server here is the wiring the agent needs: runDiagnostics with onResult writing each
// result, then the summary.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, beforeEach, describe, it } from "node:test";
import { create } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { inProcessNvmlSource } from "../../src/diag/nvml-source.js";
import { runDiagnostics } from "../../src/diag/runner.js";
import type { CheckResult, CheckStatus, DiagnosticsReport } from "../../src/diag/types.js";
import {
  CheckResultSchema,
  CheckStatus as CheckStatusProto,
  DiagnosticLevel,
  DiagnosticsSummarySchema,
  NodeAgentService,
  type RunDiagnosticsRequest,
  type RunDiagnosticsResponse,
  RunDiagnosticsResponseSchema,
} from "../../src/gen/tessera/v1/agent_pb.js";
import { openNvml } from "../../src/nvml/index.js";
import { addService } from "../../src/rpc/grpc-adapter.js";
import { runCli } from "../cli/run-cli.js";
import { createSimWorld, type SimWorld } from "../nvml/sim-world.js";

let world: SimWorld;
let socketDir: string;
before(() => {
  world = createSimWorld("dgx-h100");
  socketDir = mkdtempSync(join(tmpdir(), "tessera-diag-agent-"));
});
after(() => {
  world?.dispose();
  rmSync(socketDir, { recursive: true, force: true });
});
beforeEach(() => world.reset("dgx-h100"));

const STATUS: Record<CheckStatus, CheckStatusProto> = {
  pass: CheckStatusProto.PASS,
  warn: CheckStatusProto.WARN,
  fail: CheckStatusProto.FAIL,
  skip: CheckStatusProto.SKIP,
};

const toProto = (r: CheckResult) =>
  create(CheckResultSchema, {
    id: r.id,
    title: r.title,
    status: STATUS[r.status],
    evidence: [...r.evidence],
    remediation: r.remediation,
    durationMs: r.durationMs,
    timedOut: r.timedOut,
  });

type Handler = grpc.handleServerStreamingCall<RunDiagnosticsRequest, RunDiagnosticsResponse>;

/** The agent's side of RunDiagnostics, as the agent would wire it. */
const serveDiagnostics: Handler = async (call) => {
  const nvml = inProcessNvmlSource(() => openNvml({ readOnly: true }));
  const cancelled = new AbortController();
  call.on("cancelled", () => cancelled.abort());
  try {
    const report = await runDiagnostics(
      { nvml, kernelLog: { kind: "none" } },
      {
        level: call.request.level === DiagnosticLevel.STANDARD ? "standard" : "quick",
        ...(call.request.windowMs > 0 ? { windowMs: call.request.windowMs } : {}),
        signal: cancelled.signal,
        onResult: (r) =>
          call.write(create(RunDiagnosticsResponseSchema, { item: { case: "result", value: toProto(r) } })),
      },
    );
    const s = report.summary;
    call.write(
      create(RunDiagnosticsResponseSchema, {
        item: {
          case: "summary",
          value: create(DiagnosticsSummarySchema, {
            passed: s.passed,
            warned: s.warned,
            failed: s.failed,
            skipped: s.skipped,
            exitCode: s.exitCode,
          }),
        },
      }),
    );
    call.end();
  } finally {
    await nvml.close();
  }
};

async function startAgent(t: { after: (fn: () => Promise<void>) => void }, handler: Handler): Promise<string> {
  const server = new grpc.Server();
  // Only RunDiagnostics is exercised; the other methods are not called.
  addService(server, NodeAgentService, { runDiagnostics: handler } as unknown as Parameters<typeof addService>[2]);
  const address = `unix://${join(socketDir, `agent-${Math.random().toString(36).slice(2)}.sock`)}`;
  await new Promise<void>((resolve, reject) =>
    server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())),
  );
  t.after(() => new Promise<void>((resolve) => server.tryShutdown(() => resolve())));
  return address;
}

describe("tessera diag --agent", () => {
  it("prints the agent's checklist and exits with its verdict", async (t) => {
    world.sim.setEcc(4, { sbeVolatile: 0, dbeVolatile: 1, sbeAggregate: 0, dbeAggregate: 1 });
    const address = await startAgent(t, serveDiagnostics);
    const r = await runCli(["diag", "--agent", address]);
    assert.equal(r.code, 2, r.stdout + r.stderr);
    assert.match(r.stdout, /^FAIL: this node is not fit to run work/);
    assert.match(r.stdout, /\n\[FAIL\] gpu\.ecc +.*\n +GPU 4: 1 uncorrectable ECC errors since the driver loaded/);
    assert.match(
      r.stdout,
      new RegExp(`\\(run by the agent at ${address.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")}\\)\\n$`),
    );
  });

  it("asks for the standard level and its window, and -o json keeps checklist order", async (t) => {
    const address = await startAgent(t, serveDiagnostics);
    const r = await runCli(["diag", "--agent", address, "--level", "standard", "--window", "300ms", "-o", "json"]);
    const report = JSON.parse(r.stdout) as DiagnosticsReport & { agent: string };
    assert.equal(report.level, "standard");
    assert.equal(report.windowMs, 300);
    assert.equal(report.agent, address);
    const ids = report.results.map((x) => x.id);
    assert.deepEqual(ids.slice(0, 2), ["nvml.library", "nvml.versions"]);
    assert.deepEqual(ids.slice(-4), [
      "gpu.xid-burst",
      "gpu.error-rates",
      "gpu.throttle-residency",
      "fabric.error-rates",
    ]);
    assert.equal(report.results.find((x) => x.id === "gpu.error-rates")?.level, "standard");
    assert.equal(r.code, report.summary.exitCode);
  });

  it("exits 3 when the agent refuses (wrong role, or no diagnostics yet)", async (t) => {
    const address = await startAgent(t, (call) => {
      call.emit("error", { code: grpc.status.PERMISSION_DENIED, details: "RunDiagnostics needs the operator role" });
    });
    const r = await runCli(["diag", "--agent", address]);
    assert.equal(r.code, 3);
    assert.match(
      r.stderr,
      /RunDiagnostics failed: RunDiagnostics needs the operator role \[TESSERA_AGENT_DIAGNOSTICS\]/,
    );
  });

  it("exits 3 when the stream ends without a summary", async (t) => {
    const address = await startAgent(t, (call) => call.end());
    const r = await runCli(["diag", "--agent", address]);
    assert.equal(r.code, 3);
    assert.match(r.stderr, /without a summary/);
  });

  it("refuses local-run flags with --agent instead of ignoring them", async () => {
    const r = await runCli(["diag", "--agent", "unix:///nonexistent.sock", "--expect-gpus", "8", "--sim"]);
    assert.equal(r.code, 3);
    assert.match(r.stderr, /--expect-gpus, --sim: local-run options/);
  });
});
