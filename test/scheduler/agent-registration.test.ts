// The agent's side of registration: its `scheduler` config section and the address it announces.
import assert from "node:assert/strict";
import { hostname } from "node:os";
import { describe, it } from "node:test";
import { defaultAgentConfig, finishConfig, parseAgentConfig } from "../../src/agent/config.js";
import { advertisedAddress } from "../../src/agent/scheduler-registration.js";
import { InputError } from "../../src/errors.js";

const DEV = { listenTcp: "127.0.0.1:7443", devInsecure: true };

function fails(text: string, overrides: Parameters<typeof finishConfig>[1], message: RegExp): void {
  assert.throws(
    () => finishConfig(parseAgentConfig(text, "agent.yaml"), overrides),
    (err: unknown) => err instanceof InputError && message.test(err.message),
  );
}

describe("agent registration config", () => {
  it("registers nowhere by default", () => {
    assert.equal(defaultAgentConfig().scheduler.address, "");
  });

  it("reads the scheduler section and its flags", () => {
    const c = finishConfig(parseAgentConfig("scheduler: { address: '127.0.0.1:7444', leaseTtlMs: 9000 }\n", "a.yaml"), {
      ...DEV,
      schedulerInsecure: true,
      nodeId: "gpu-017",
    });
    assert.deepEqual(
      [c.scheduler.address, c.scheduler.leaseTtlMs, c.scheduler.insecure, c.nodeId],
      ["127.0.0.1:7444", 9000, true, "gpu-017"],
    );
  });

  it("refuses what cannot work", () => {
    fails("scheduler: { address: nowhere }\n", DEV, /scheduler\.address: expected host:port or unix:\/\/\/path/);
    fails("scheduler: { address: 'sched:7444' }\n", DEV, /scheduler\.address \(sched:7444\) needs mTLS/);
    fails(
      "scheduler: { address: '10.0.0.5:7444', insecure: true }\n",
      DEV,
      /scheduler\.insecure .* needs a loopback scheduler\.address/,
    );
    fails(
      "scheduler: { address: '127.0.0.1:7444', insecure: true }\n",
      { socket: "/tmp/a.sock" },
      /the scheduler cannot reach this agent: set listen\.tcp/,
    );
  });

  it("announces the bound TCP address, this host's name for a wildcard, or what it is told", () => {
    const c = finishConfig(parseAgentConfig("", "a.yaml"), DEV);
    assert.equal(advertisedAddress(c, "127.0.0.1:40123", undefined), "127.0.0.1:40123");
    assert.equal(advertisedAddress(c, "0.0.0.0:7443", undefined), `${hostname()}:7443`);
    assert.equal(advertisedAddress(c, undefined, "/run/tessera/agent.sock"), "unix:///run/tessera/agent.sock");
    const told = finishConfig(parseAgentConfig("scheduler: { advertise: 'gpu-017.dc:7443' }\n", "a.yaml"), DEV);
    assert.equal(advertisedAddress(told, "0.0.0.0:7443", undefined), "gpu-017.dc:7443");
  });
});
