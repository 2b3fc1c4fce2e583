import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { diffFabricHealth } from "../../src/fabric/events.js";
import type { FabricHealth, FabricProblem, PortHealth, PortVerdict, ReasonCode } from "../../src/fabric/health.js";

function port(key: string, verdict: PortVerdict, codes: ReasonCode[] = []): PortHealth {
  const [device = "", n = "1"] = key.split("/");
  return {
    key,
    device,
    port: Number(n),
    linkLayer: "InfiniBand",
    role: undefined,
    ignored: false,
    verdict,
    reasons: codes.map((code) => ({ code, severity: "warning", message: code })),
    notes: [],
    rate: undefined,
    expected: undefined,
    traffic: undefined,
    errorRatesPerSec: {},
    downEvents: 0,
  };
}

function health(atMs: number, ports: PortHealth[], problems: FabricProblem[] = []): FabricHealth {
  return { atMs, status: "healthy", ports, problems };
}

const missing: FabricProblem = {
  code: "expected-port-missing",
  severity: "critical",
  subject: "mlx5_10/1",
  message: "expected port mlx5_10/1 is missing",
};

describe("diffFabricHealth", () => {
  const cases: {
    name: string;
    prev: FabricHealth | undefined;
    curr: FabricHealth;
    expect: { key: string; from: string; to: string; added: ReasonCode[]; cleared: ReasonCode[] }[];
  }[] = [
    {
      name: "at start, reports only ports that are not healthy",
      prev: undefined,
      curr: health(1, [port("mlx5_0/1", "healthy"), port("mlx5_4/1", "down", ["state-not-active"])]),
      expect: [{ key: "mlx5_4/1", from: "unknown", to: "down", added: ["state-not-active"], cleared: [] }],
    },
    {
      name: "nothing changed, nothing to report",
      prev: health(1, [port("mlx5_0/1", "degraded", ["error-rate"])]),
      curr: health(2, [port("mlx5_0/1", "degraded", ["error-rate"])]),
      expect: [],
    },
    {
      name: "a port going down and coming back",
      prev: health(1, [port("mlx5_0/1", "healthy")]),
      curr: health(2, [port("mlx5_0/1", "down", ["state-not-active", "phys-state-not-linkup"])]),
      expect: [
        {
          key: "mlx5_0/1",
          from: "healthy",
          to: "down",
          added: ["state-not-active", "phys-state-not-linkup"],
          cleared: [],
        },
      ],
    },
    {
      name: "recovery clears the reasons",
      prev: health(1, [port("mlx5_0/1", "flapping", ["flapping", "link-downed"])]),
      curr: health(2, [port("mlx5_0/1", "healthy")]),
      expect: [{ key: "mlx5_0/1", from: "flapping", to: "healthy", added: [], cleared: ["flapping", "link-downed"] }],
    },
    {
      name: "a new reason under the same verdict is reported",
      prev: health(1, [port("mlx5_0/1", "degraded", ["error-rate"])]),
      curr: health(2, [port("mlx5_0/1", "degraded", ["error-rate", "link-downed"])]),
      expect: [{ key: "mlx5_0/1", from: "degraded", to: "degraded", added: ["link-downed"], cleared: [] }],
    },
    {
      name: "ports appearing and vanishing",
      prev: health(1, [port("mlx5_10/1", "healthy")]),
      curr: health(2, [port("mlx5_11/1", "healthy")]),
      expect: [
        { key: "mlx5_11/1", from: "absent", to: "healthy", added: [], cleared: [] },
        { key: "mlx5_10/1", from: "healthy", to: "absent", added: [], cleared: [] },
      ],
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const events = diffFabricHealth(c.prev, c.curr).filter((e) => e.type === "fabric.port.health");
      assert.deepEqual(
        events.map((e) => ({ key: e.key, from: e.from, to: e.to, added: e.added, cleared: e.cleared })),
        c.expect,
      );
      for (const e of events) assert.equal(e.atMs, c.curr.atMs);
    });
  }

  it("raises and clears fabric problems", () => {
    const raised = diffFabricHealth(health(1, []), health(2, [], [missing]));
    assert.deepEqual(raised, [{ type: "fabric.problem", atMs: 2, status: "raised", problem: missing }]);
    const cleared = diffFabricHealth(health(2, [], [missing]), health(3, []));
    assert.deepEqual(cleared, [{ type: "fabric.problem", atMs: 3, status: "cleared", problem: missing }]);
    assert.deepEqual(diffFabricHealth(health(2, [], [missing]), health(3, [], [missing])), []);
  });
});
