import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { sampleFromPort } from "../../src/fabric/counters.js";
import {
  DEFAULT_THRESHOLDS,
  type ExpectedFabric,
  evaluateFabric,
  exitCodeFor,
  type FabricHealth,
  type HealthThresholds,
  isPortUp,
  mergeThresholds,
  type PortCounterView,
  type PortVerdict,
  type ReasonCode,
  retentionMs,
  trackedCounterKeys,
} from "../../src/fabric/health.js";
import { advancePortHistory, type PortHistory } from "../../src/fabric/history.js";
import { parsePhysState, parsePortState, parseRate } from "../../src/fabric/parse.js";
import type { FabricReading, RdmaDeviceReading, RdmaPortReading } from "../../src/fabric/read.js";
import { device, ibPort } from "./helpers.js";

const BOOT = "3e2f1b5c-8a4d-4f6e-9b7a-1c2d3e4f5a6b";
const NOW = 10_000_000;

function reading(devices: RdmaDeviceReading[]): FabricReading {
  return { sysfsRoot: "/sys", devices, problems: [], durationMs: 0 };
}

/** mlx5_<i> with one port; `i` picks the name. */
function nic(i: number, port: Partial<RdmaPortReading> = {}, dev: Partial<RdmaDeviceReading> = {}): RdmaDeviceReading {
  const name = `mlx5_${i}`;
  return device([ibPort({ device: name, key: `${name}/1`, umad: `umad${i}`, ...port })], {
    name,
    uverbs: `uverbs${i}`,
    ...dev,
  });
}

/**
 * Counter views from a sequence of counter snapshots of each port, the last
 * at NOW, `stepMs` apart. Missing ports get no view.
 */
function views(
  series: Record<string, { counters: Record<string, bigint>; up?: boolean }[]>,
  stepMs: number,
  thresholds: HealthThresholds = DEFAULT_THRESHOLDS,
): Map<string, PortCounterView> {
  const out = new Map<string, PortCounterView>();
  for (const [key, steps] of Object.entries(series)) {
    let history: PortHistory | undefined;
    let view: PortCounterView | undefined;
    steps.forEach((s, i) => {
      const atMs = NOW - (steps.length - 1 - i) * stepMs;
      const port = ibPort({ counters: s.counters });
      const step = advancePortHistory(history, sampleFromPort(port, atMs, BOOT), s.up ?? true, {
        trackedCounters: trackedCounterKeys(thresholds),
        retainMs: retentionMs(thresholds),
        maxEntries: 512,
      });
      history = step.history;
      view = step;
    });
    if (view) out.set(key, view);
  }
  return out;
}

function evaluate(
  devices: RdmaDeviceReading[],
  counters: Map<string, PortCounterView> = new Map(),
  expected?: ExpectedFabric,
  thresholds?: HealthThresholds,
): FabricHealth {
  return evaluateFabric({ reading: reading(devices), counters, expected, thresholds, nowMs: NOW });
}

const base = { symbol_error: 0n, link_downed: 1n, port_rcv_errors: 0n, port_xmit_data: 0n, port_rcv_data: 0n };
const peers = [nic(1), nic(2), nic(3)];

interface Case {
  name: string;
  devices: RdmaDeviceReading[];
  counters?: Map<string, PortCounterView>;
  expected?: ExpectedFabric;
  verdict: PortVerdict;
  codes: ReasonCode[];
}

const cases: Case[] = [
  {
    name: "an ACTIVE/LinkUp port at its peers' rate is healthy",
    devices: [nic(0), ...peers],
    verdict: "healthy",
    codes: [],
  },
  {
    name: "DOWN/Polling (pulled cable) is down, with both reasons",
    devices: [nic(0, { state: parsePortState("1: DOWN"), physState: parsePhysState("2: Polling") }), ...peers],
    verdict: "down",
    codes: ["state-not-active", "phys-state-not-linkup"],
  },
  {
    name: "INIT with the link up (no subnet manager) is down",
    devices: [nic(0, { state: parsePortState("2: INIT") }), ...peers],
    verdict: "down",
    codes: ["state-not-active"],
  },
  {
    name: "an unreadable state is down, never assumed healthy",
    devices: [nic(0, { state: undefined }), ...peers],
    verdict: "down",
    codes: ["unreadable"],
  },
  {
    name: "a down port's leftover rate is not judged again",
    devices: [
      nic(0, {
        state: parsePortState("1: DOWN"),
        physState: parsePhysState("3: Disabled"),
        rate: parseRate("10 Gb/sec (4X SDR)"),
      }),
      ...peers,
    ],
    verdict: "down",
    codes: ["state-not-active", "phys-state-not-linkup"],
  },
  {
    name: "4X→1X against InfiniBand peers of the same HCA is degraded",
    devices: [nic(0, { rate: parseRate("100 Gb/sec (1X NDR)") }), ...peers],
    verdict: "degraded",
    codes: ["width-below-expected"],
  },
  {
    name: "NDR→HDR against peers is degraded",
    devices: [nic(0, { rate: parseRate("200 Gb/sec (4X HDR)") }), ...peers],
    verdict: "degraded",
    codes: ["speed-below-expected"],
  },
  {
    name: "Ethernet ports are not compared with peers (2X bonds are normal)",
    devices: [nic(0, { linkLayer: "Ethernet", rate: parseRate("200 Gb/sec (2X NDR)"), umad: undefined }), ...peers],
    verdict: "healthy",
    codes: [],
  },
  {
    name: "a port with configured expectations is judged against them",
    devices: [nic(0, { rate: parseRate("200 Gb/sec (4X HDR)") })],
    expected: {
      ports: [{ device: "mlx5_0", port: 1, linkLayer: "InfiniBand", minRateGbps: 400, width: 4, speed: "NDR" }],
      rules: [],
      ignore: [],
    },
    verdict: "degraded",
    codes: ["speed-below-expected", "rate-below-expected"],
  },
  {
    name: "the wrong link layer is a reason",
    devices: [nic(0, { linkLayer: "Ethernet", umad: undefined })],
    expected: { ports: [{ device: "mlx5_0", port: 1, linkLayer: "InfiniBand" }], rules: [], ignore: [] },
    verdict: "degraded",
    codes: ["link-layer-mismatch"],
  },
  {
    name: "no uverbs device means user space cannot use the NIC",
    devices: [nic(0, {}, { uverbs: undefined })],
    verdict: "degraded",
    codes: ["no-uverbs"],
  },
  {
    name: "an InfiniBand port without umad is degraded",
    devices: [nic(0, { umad: undefined })],
    verdict: "degraded",
    codes: ["no-umad"],
  },
  {
    name: "a PCIe link below its capability is degraded",
    devices: [nic(0, {}, { pcieLink: { currentSpeedGTs: 16, currentWidth: 8, maxSpeedGTs: 32, maxWidth: 16 } })],
    verdict: "degraded",
    codes: ["pcie-downgraded"],
  },
  {
    name: "more than 10 symbol errors per second is an error rate",
    devices: [nic(0)],
    counters: views({ "mlx5_0/1": [{ counters: base }, { counters: { ...base, symbol_error: 50n } }] }, 1000),
    verdict: "degraded",
    codes: ["error-rate"],
  },
  {
    name: "10 symbol errors per second is within the limit",
    devices: [nic(0)],
    counters: views({ "mlx5_0/1": [{ counters: base }, { counters: { ...base, symbol_error: 10n } }] }, 1000),
    verdict: "healthy",
    codes: [],
  },
  {
    name: "more than 120 symbol errors within an hour, spread out, is critical",
    devices: [nic(0)],
    counters: views(
      {
        "mlx5_0/1": [0n, 5n, 45n, 85n, 125n].map((n) => ({ counters: { ...base, symbol_error: n } })),
      },
      600_000,
    ),
    verdict: "degraded",
    codes: ["error-rate"],
  },
  {
    name: "one link_downed increment is critical",
    devices: [nic(0)],
    counters: views({ "mlx5_0/1": [{ counters: base }, { counters: { ...base, link_downed: 2n } }] }, 60_000),
    verdict: "degraded",
    codes: ["link-downed"],
  },
  {
    name: "a link_downed increment 11 minutes ago no longer counts",
    devices: [nic(0)],
    counters: views(
      {
        "mlx5_0/1": [
          { counters: base },
          { counters: { ...base, link_downed: 2n } },
          { counters: { ...base, link_downed: 2n } },
        ],
      },
      660_000,
    ),
    verdict: "healthy",
    codes: [],
  },
  {
    name: "three link-downs within 12 h while up now is flapping",
    devices: [nic(0)],
    counters: views({ "mlx5_0/1": [{ counters: base }, { counters: { ...base, link_downed: 4n } }] }, 300_000),
    verdict: "flapping",
    codes: ["link-downed", "flapping"],
  },
  {
    name: "observed down/up transitions alone make a port flapping",
    devices: [nic(0)],
    counters: views(
      { "mlx5_0/1": [true, false, true, false, true, false, true].map((up) => ({ counters: base, up })) },
      60_000,
    ),
    verdict: "flapping",
    codes: ["flapping"],
  },
  {
    name: "a saturated error counter hides further errors",
    devices: [nic(0)],
    counters: views({ "mlx5_0/1": [{ counters: { ...base, symbol_error: 65535n } }] }, 1000),
    verdict: "degraded",
    codes: ["counter-saturated"],
  },
  {
    name: "any rnr_nak_retry_err (connection severed) is critical",
    devices: [nic(0, { hwCounters: { rnr_nak_retry_err: 1n } })],
    counters: (() => {
      const m = new Map<string, PortCounterView>();
      const policy = { trackedCounters: trackedCounterKeys(DEFAULT_THRESHOLDS), retainMs: 43_200_000, maxEntries: 64 };
      const p0 = ibPort({ hwCounters: { rnr_nak_retry_err: 0n } });
      const p1 = ibPort({ hwCounters: { rnr_nak_retry_err: 1n } });
      const first = advancePortHistory(undefined, sampleFromPort(p0, NOW - 1000, BOOT), true, policy);
      m.set("mlx5_0/1", advancePortHistory(first.history, sampleFromPort(p1, NOW, BOOT), true, policy));
      return m;
    })(),
    verdict: "degraded",
    codes: ["error-rate"],
  },
];

describe("evaluateFabric: port verdicts", () => {
  for (const c of cases) {
    it(c.name, () => {
      const health = evaluate(c.devices, c.counters, c.expected);
      const port = health.ports.find((p) => p.key === "mlx5_0/1");
      assert.ok(port);
      assert.equal(port.verdict, c.verdict, JSON.stringify(port.reasons));
      assert.deepEqual([...new Set(port.reasons.map((r) => r.code))].sort(), [...c.codes].sort());
    });
  }

  it("names the counter, the observed count and the limit in error reasons", () => {
    const health = evaluate(
      [nic(0)],
      views({ "mlx5_0/1": [{ counters: base }, { counters: { ...base, symbol_error: 50n } }] }, 1000),
    );
    const r = health.ports[0]?.reasons.find((x) => x.code === "error-rate");
    assert.equal(r?.counter, "symbol_error");
    assert.equal(r?.observed, 50);
    assert.equal(r?.limit, 10);
    assert.match(r?.message ?? "", /symbol_error 50 per 1 s \(limit 10\)/);
  });

  it("reports error rates and traffic of the last interval", () => {
    const health = evaluate(
      [nic(0)],
      views(
        {
          "mlx5_0/1": [
            { counters: base },
            { counters: { ...base, symbol_error: 2n, port_xmit_data: 12_500_000_000n, port_rcv_data: 0n } },
          ],
        },
        1000,
      ),
    );
    assert.deepEqual(health.ports[0]?.errorRatesPerSec, { symbol_error: 2 });
    assert.equal(health.ports[0]?.traffic?.xmitGbps, 400);
  });
});

describe("evaluateFabric: fabric status and expectations", () => {
  it("is healthy when every port is", () => {
    const h = evaluate([nic(0), nic(1)]);
    assert.equal(h.status, "healthy");
    assert.equal(exitCodeFor(h.status), 0);
  });

  it("is degraded when a port is degraded, critical when one is down", () => {
    assert.equal(evaluate([nic(0, { umad: undefined }), nic(1)]).status, "degraded");
    const down = evaluate([nic(0, { state: parsePortState("1: DOWN") }), nic(1)]);
    assert.equal(down.status, "critical");
    assert.equal(exitCodeFor(down.status), 2);
    assert.equal(exitCodeFor("degraded"), 1);
  });

  it("shows ignored ports but does not count them", () => {
    const h = evaluate([nic(0, { state: parsePortState("1: DOWN") }), nic(1)], new Map(), {
      ports: [],
      rules: [],
      ignore: ["mlx5_0"],
    });
    assert.equal(h.ports[0]?.verdict, "down");
    assert.equal(h.ports[0]?.ignored, true);
    assert.equal(h.status, "healthy");
  });

  it("makes a missing expected port critical", () => {
    const h = evaluate([nic(0)], new Map(), {
      ports: [
        { device: "mlx5_0", port: 1 },
        { device: "mlx5_1", port: 1 },
        { device: "mlx5_0", port: 2 },
      ],
      rules: [],
      ignore: [],
    });
    assert.equal(h.status, "critical");
    assert.deepEqual(
      h.problems.map((p) => [p.code, p.subject]),
      [
        ["expected-port-missing", "mlx5_1/1"],
        ["expected-port-missing", "mlx5_0/2"],
      ],
    );
    assert.match(h.problems[0]?.message ?? "", /no RDMA device mlx5_1/);
    assert.match(h.problems[1]?.message ?? "", /mlx5_0 has no port 2/);
  });

  it("checks 'at least N InfiniBand ports up at >= R Gb/s' rules", () => {
    const devices = [0, 1, 2].map((i) => nic(i));
    const rule = { linkLayer: "InfiniBand" as const, minPorts: 3, minRateGbps: 400 };
    assert.deepEqual(evaluate(devices, new Map(), { ports: [], rules: [rule], ignore: [] }).problems, []);
    const slow = [nic(0), nic(1), nic(2, { rate: parseRate("200 Gb/sec (4X HDR)") })];
    const h = evaluate(slow, new Map(), { ports: [], rules: [rule], ignore: [] });
    assert.equal(h.problems[0]?.code, "too-few-ports");
    assert.match(
      h.problems[0]?.message ?? "",
      /only 2 InfiniBand port\(s\) are active at >= 400 Gb\/s; expected at least 3/,
    );
  });
});

describe("thresholds", () => {
  it("override every default rule of the counters they name and keep the rest", () => {
    const t = mergeThresholds(DEFAULT_THRESHOLDS, {
      counters: [
        { source: "counters", counter: "symbol_error", maxIncrements: 1000, windowMs: 1000, severity: "warning" },
      ],
      disable: ["port_xmit_discards", "hw_counters/rnr_nak_retry_err"],
      flap: { minDownEvents: 5 },
    });
    assert.deepEqual(
      t.counters.filter((c) => c.counter === "symbol_error").map((c) => c.maxIncrements),
      [1000],
    );
    assert.ok(!t.counters.some((c) => c.counter === "port_xmit_discards" || c.counter === "rnr_nak_retry_err"));
    assert.ok(t.counters.some((c) => c.counter === "link_downed"));
    assert.deepEqual(t.flap, { minDownEvents: 5, windowMs: DEFAULT_THRESHOLDS.flap.windowMs });
  });

  it("a raised limit clears an error-rate reason", () => {
    const t = mergeThresholds(DEFAULT_THRESHOLDS, {
      counters: [
        { source: "counters", counter: "symbol_error", maxIncrements: 100, windowMs: 1000, severity: "warning" },
      ],
    });
    const v = views({ "mlx5_0/1": [{ counters: base }, { counters: { ...base, symbol_error: 50n } }] }, 1000, t);
    assert.equal(evaluate([nic(0)], v, undefined, t).ports[0]?.verdict, "healthy");
  });

  it("isPortUp needs both ACTIVE and LinkUp", () => {
    assert.equal(isPortUp(ibPort()), true);
    assert.equal(isPortUp(ibPort({ physState: parsePhysState("6: LinkErrorRecovery") })), false);
    assert.equal(isPortUp(ibPort({ state: undefined })), undefined);
  });
});
