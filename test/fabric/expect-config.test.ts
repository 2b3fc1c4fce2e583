import assert from "node:assert/strict";
import { join } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { InputError } from "../../src/errors.js";
import { loadExpectedFabric, parseDurationMs, parseExpectedFabric } from "../../src/fabric/expect-config.js";
import { DEFAULT_THRESHOLDS } from "../../src/fabric/health.js";

const FIXTURES = join(fileURLToPath(new URL(".", import.meta.url)), "..", "fixtures", "fabric");

describe("parseExpectedFabric", () => {
  it("reads ports, rules, ignore and threshold overrides", () => {
    const e = parseExpectedFabric(
      [
        "version: 1",
        "ports:",
        "  - { device: mlx5_0, linkLayer: InfiniBand, minRateGbps: 400, width: 4X, speed: NDR, role: compute }",
        "  - device: mlx5_1",
        "    port: 1",
        "    width: 2",
        "rules:",
        "  - { linkLayer: InfiniBand, minPorts: 8, minRateGbps: 400 }",
        "ignore: [mlx5_7, mlx5_8/1]",
        "thresholds:",
        "  counters:",
        "    - { counter: symbol_error, maxIncrements: 20, window: 1s }",
        "    - { counter: hw_counters/out_of_buffer, maxIncrements: 1000, window: 10min, severity: critical }",
        "  disable: [port_xmit_discards]",
        "  flap: { minDownEvents: 5 }",
      ].join("\n"),
      "expect.yaml",
    );
    assert.deepEqual(e.expected.ports, [
      { device: "mlx5_0", port: 1, linkLayer: "InfiniBand", minRateGbps: 400, width: 4, speed: "NDR", role: "compute" },
      { device: "mlx5_1", port: 1, width: 2 },
    ]);
    assert.deepEqual(e.expected.rules, [{ linkLayer: "InfiniBand", minPorts: 8, minRateGbps: 400 }]);
    assert.deepEqual(e.expected.ignore, ["mlx5_7", "mlx5_8/1"]);
    const sym = e.thresholds.counters.filter((t) => t.counter === "symbol_error");
    assert.deepEqual(sym, [
      { source: "counters", counter: "symbol_error", maxIncrements: 20, windowMs: 1000, severity: "warning" },
    ]);
    assert.ok(
      e.thresholds.counters.some(
        (t) => t.source === "hw_counters" && t.counter === "out_of_buffer" && t.windowMs === 600_000,
      ),
    );
    assert.ok(!e.thresholds.counters.some((t) => t.counter === "port_xmit_discards"));
    assert.deepEqual(e.thresholds.flap, { minDownEvents: 5, windowMs: DEFAULT_THRESHOLDS.flap.windowMs });
  });

  it("an empty document with only a version expects nothing", () => {
    const e = parseExpectedFabric("version: 1\n", "x.yaml");
    assert.deepEqual(e.expected, { ports: [], rules: [], ignore: [] });
    assert.deepEqual(e.thresholds, DEFAULT_THRESHOLDS);
  });

  const errors: [string, string, RegExp][] = [
    [
      "a wrong type, at its line",
      "version: 1\nports:\n  - device: mlx5_0\n    minRateGbps: fast\n",
      /^e\.yaml:4:18: ports\[0\]\.minRateGbps: .*expected number/,
    ],
    [
      "an unknown field, at the key",
      "version: 1\nports:\n  - device: mlx5_0\n    minRate: 400\n",
      /^e\.yaml:4:5: ports\[0\]\.minRate: unknown field/,
    ],
    [
      "a missing field, at its parent",
      "version: 1\nrules:\n  - linkLayer: InfiniBand\n",
      /^e\.yaml:3:5: rules\[0\]\.minPorts: /,
    ],
    ["a missing version", "ports: []\n", /^e\.yaml:1:1: version: /],
    [
      "an impossible width",
      "version: 1\nports:\n  - { device: mlx5_0, width: 3X }\n",
      /^e\.yaml:3:30: ports\[0\]\.width: width must be one of 1X, 2X, 4X, 8X, 12X/,
    ],
    ["an unknown speed", "version: 1\nports:\n  - { device: mlx5_0, speed: ZDR }\n", /ports\[0\]\.speed/],
    [
      "a bad duration",
      "version: 1\nthresholds:\n  counters:\n    - { counter: symbol_error, maxIncrements: 1, window: soon }\n",
      /^e\.yaml:4:58: thresholds\.counters\[0\]\.window: expected a duration/,
    ],
    [
      "a port listed twice",
      "version: 1\nports:\n  - device: mlx5_0\n  - device: mlx5_0\n    port: 1\n",
      /^e\.yaml:4:5: ports\[1\]: port mlx5_0\/1 is already listed at ports\[0\]/,
    ],
    ["broken YAML", "version: 1\nports: [\n", /^e\.yaml:\d+:\d+: YAML: /],
  ];
  for (const [name, text, message] of errors) {
    it(`rejects ${name}`, () => {
      assert.throws(
        () => parseExpectedFabric(text, "e.yaml"),
        (err) => err instanceof InputError && err.file === "e.yaml" && message.test(err.message),
      );
    });
  }
});

describe("loadExpectedFabric", () => {
  it("loads the committed DGX expectations", async () => {
    const h100 = await loadExpectedFabric(join(FIXTURES, "expect-dgx-h100.yaml"));
    assert.equal(h100.expected.ports.filter((p) => p.role === "compute").length, 8);
    const a100 = await loadExpectedFabric(join(FIXTURES, "expect-dgx-a100.yaml"));
    assert.equal(a100.expected.ports.filter((p) => p.role === "compute").length, 8);
  });

  it("names the file when it cannot be read", async () => {
    await assert.rejects(loadExpectedFabric("/nonexistent/expect.yaml"), (err) => {
      return err instanceof InputError && err.file === "/nonexistent/expect.yaml" && /ENOENT/.test(err.message);
    });
  });
});

describe("parseDurationMs", () => {
  const cases: [string, number | undefined][] = [
    ["1s", 1000],
    ["500ms", 500],
    ["10min", 600_000],
    ["10m", 600_000],
    ["12h", 43_200_000],
    ["0s", undefined],
    ["1d", undefined],
    ["fast", undefined],
  ];
  for (const [text, ms] of cases) it(`${text} → ${ms}`, () => assert.equal(parseDurationMs(text), ms));
});
