import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { InputError } from "../../src/errors.js";
import {
  defaultSchedulerConfig,
  finishSchedulerConfig,
  parseSchedulerConfig,
  type SchedulerOverrides,
} from "../../src/scheduler/config.js";

const DEV: SchedulerOverrides = { listenTcp: "127.0.0.1:7444", devInsecure: true, agentsInsecure: true };

function parseFails(text: string, message: RegExp): void {
  assert.throws(
    () => parseSchedulerConfig(text, "/etc/tessera/scheduler.yaml"),
    (err: unknown) => {
      assert.ok(err instanceof InputError);
      assert.match(err.message, message);
      return true;
    },
  );
}

function finishFails(text: string, overrides: SchedulerOverrides, message: RegExp): void {
  const base = parseSchedulerConfig(text, "scheduler.yaml");
  assert.throws(
    () => finishSchedulerConfig(base, overrides),
    (err: unknown) => {
      assert.ok(err instanceof InputError);
      assert.match(err.message, message);
      return true;
    },
  );
}

describe("scheduler config", () => {
  it("has a default for everything", () => {
    const c = defaultSchedulerConfig();
    assert.equal(c.listen.socket, "/run/tessera/scheduler.sock");
    assert.equal(c.nodes.leaseTtlMs, 15_000);
    assert.equal(c.nodes.allowSimulated, false);
    assert.equal(c.placement.policy, "fragmentation");
    assert.equal(c.quotaConfig.defaults.computeSlices, null);
  });

  it("reads roles, narrowing, quotas and bounds", () => {
    const c = finishSchedulerConfig(
      parseSchedulerConfig(
        [
          "auth:",
          "  rules:",
          "    - { cn: ci-team-a, role: tenant, tenants: [team-a] }",
          "    - { uri: 'spiffe://tessera/node/n1', role: node, nodes: [n1] }",
          "nodes: { leaseTtlMs: 9000, allowSimulated: true }",
          "quotas:",
          "  defaults: { computeSlices: 14 }",
          "  tenants:",
          "    team-a: { memorySlices: 16 }",
          "",
        ].join("\n"),
        "scheduler.yaml",
      ),
      DEV,
    );
    assert.deepEqual(c.auth.rules[0], { cn: "ci-team-a", role: "tenant", tenants: ["team-a"] });
    assert.equal(c.nodes.leaseTtlMs, 9000);
    assert.equal(c.quotaConfig.tenants.get("team-a")?.memorySlices, 16);
    assert.equal(c.quotaConfig.defaults.computeSlices, 14);
  });

  it("names the file, line and column of an unknown setting", () => {
    parseFails("nodes:\n  leaseTtl: 5\n", /^\/etc\/tessera\/scheduler\.yaml:2:3: nodes\.leaseTtl: unknown setting/);
  });

  it("names the field of an invalid value", () => {
    parseFails(
      "auth:\n  rules:\n    - { cn: x, role: root }\n",
      /scheduler\.yaml:3:22: auth\.rules\[0\]\.role: Invalid option/,
    );
    parseFails("auth:\n  rules:\n    - { cn: x, dns: y, role: viewer }\n", /exactly one of cn, dns or uri/);
    parseFails(
      "auth:\n  rules:\n    - { cn: x, role: viewer, tenants: [a] }\n",
      /tenants restricts a tenant rule only/,
    );
    parseFails("quotas:\n  tenants:\n    a: { computeSlices: -1 }\n", /:3:\d+: quotas\.tenants\.a\.computeSlices: /);
    parseFails("placement: { policy: random }\n", /placement\.policy: /);
    parseFails("listen: { tcp: nowhere }\n", /listen\.tcp: expected host:port/);
    parseFails("nodes: [1, 2\n", /YAML: /);
  });

  it("refuses settings that do not make sense together", () => {
    finishFails("", { listenTcp: "0.0.0.0:7444", agentsInsecure: true }, /listen\.tcp \(0\.0\.0\.0:7444\) needs mTLS/);
    finishFails("", { ...DEV, listenTcp: "10.0.0.1:7444" }, /needs a loopback listen\.tcp/);
    finishFails("", { listenTcp: "127.0.0.1:1", devInsecure: true }, /^agents\.tls needs ca, cert and key/);
    finishFails("listen: { socket: '' }", { agentsInsecure: true }, /nothing to listen on/);
    finishFails("nodes: { leaseTtlMs: 500 }", DEV, /nodes\.leaseTtlMs \(500\) must be within/);
    finishFails("agents: { reconnectMinMs: 9000, reconnectMaxMs: 100 }", DEV, /reconnectMinMs \(9000\) exceeds/);
  });

  it("lets flags override the file", () => {
    const c = finishSchedulerConfig(parseSchedulerConfig("nodes: { allowSimulated: false }\n", "s.yaml"), {
      ...DEV,
      allowSimulated: true,
      startupGraceMs: 0,
      nodeLeaseTtlMs: 2000,
    });
    assert.deepEqual(
      [c.nodes.allowSimulated, c.placement.startupGraceMs, c.nodes.leaseTtlMs, c.listen.tcp],
      [true, 0, 2000, "127.0.0.1:7444"],
    );
  });
});
