// RunDiagnostics served by a real agent: `tessera diag --agent` over the agent's unix socket.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { runCli } from "../cli/run-cli.js";
import { createSimWorld, type SimWorld } from "../nvml/sim-world.js";
import { type AgentProcess, removeDir, startAgent } from "./harness.js";

let world: SimWorld;
let agent: AgentProcess;

before(async () => {
  world = createSimWorld("dgx-h100");
  agent = await startAgent({ args: ["--sampling-interval", "200"] });
});
after(async () => {
  await agent?.stop();
  if (agent) removeDir(agent.dir);
  world?.dispose();
});

describe("RunDiagnostics in the agent", () => {
  it("runs the checks inside the agent and streams a failing ECC verdict with its remediation", async () => {
    assert.ok(agent.socket);
    world.sim.setEcc(3, { sbeVolatile: 0, dbeVolatile: 2, sbeAggregate: 0, dbeAggregate: 2 });
    const r = await runCli(["diag", "--agent", `unix://${agent.socket}`]);
    assert.equal(r.code, 2, r.stdout + r.stderr);
    assert.match(r.stdout, /\[FAIL\] gpu\.ecc/);
    assert.match(r.stdout, /GPU 3: 2 uncorrectable ECC errors/);
    assert.match(r.stdout, /\[PASS\] nvml\.library/);
  });

  it("reports XIDs the agent received from NVML", async () => {
    world.sim.setEcc(3, { sbeVolatile: 0, dbeVolatile: 0, sbeAggregate: 0, dbeAggregate: 0 });
    world.sim.injectXid(6, 79);
    await agent
      .waitForLog((l) => typeof l.msg === "string" && /XID 79/.test(String(l.msg) + JSON.stringify(l)), 10_000)
      .catch(() => undefined);
    const r = await runCli(["diag", "--agent", `unix://${agent.socket}`, "-o", "json"]);
    const report = JSON.parse(r.stdout) as { results: { id: string; status: string; evidence: string[] }[] };
    const xid = report.results.find((x) => x.id === "gpu.xid");
    assert.equal(xid?.status, "fail", JSON.stringify(xid));
    assert.match(xid?.evidence.join("\n") ?? "", /79/);
  });
});
