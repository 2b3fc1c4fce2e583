import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import {
  formatNvmlBusId,
  formatSysfsPciAddress,
  IB_LANE_RATE_GBPS,
  type IbSpeed,
  PHYS_STATE_NAMES,
  PORT_STATE_NAMES,
  parseCounter,
  parseDecimal,
  parseGid,
  parseGidType,
  parseHex,
  parseLinkLayer,
  parseNodeType,
  parseNumaNode,
  parsePciAddress,
  parsePcieSpeed,
  parsePhysState,
  parsePortState,
  parseRate,
  SysfsParseError,
  toNvmlBusId,
  toSysfsPciAddress,
} from "../../src/fabric/parse.js";

/** Runs one parser over a table: `[input, expected]` or `[input, SysfsParseError]`. */
function table<T>(parse: (text: string) => T, cases: readonly (readonly [string, T | typeof SysfsParseError])[]): void {
  for (const [input, expected] of cases) {
    it(`${JSON.stringify(input)} → ${expected === SysfsParseError ? "error" : JSON.stringify(expected, (_k, v) => (typeof v === "bigint" ? `${v}n` : v))}`, () => {
      if (expected === SysfsParseError) assert.throws(() => parse(input), SysfsParseError);
      else assert.deepEqual(parse(input), expected);
    });
  }
}

describe("parsePortState", () => {
  table(parsePortState, [
    ["4: ACTIVE\n", { id: 4, name: "ACTIVE" }],
    ["4: ACTIVE", { id: 4, name: "ACTIVE" }],
    ["1: DOWN\n", { id: 1, name: "DOWN" }],
    ["2: INIT\n", { id: 2, name: "INIT" }],
    ["3: ARMED\n", { id: 3, name: "ARMED" }],
    ["5: ACTIVE_DEFER\n", { id: 5, name: "ACTIVE_DEFER" }],
    ["0: NOP\n", { id: 0, name: "NOP" }],
    ["9: UNKNOWN\n", { id: 9, name: "UNKNOWN" }],
    ["4: DOWN\n", SysfsParseError],
    ["ACTIVE\n", SysfsParseError],
    ["4:ACTIVE\n", SysfsParseError],
    ["", SysfsParseError],
    ["N/A (no PMA)\n", SysfsParseError],
  ]);
});

describe("parsePhysState", () => {
  table(parsePhysState, [
    ["5: LinkUp\n", { id: 5, name: "LinkUp" }],
    ["5: LinkUp", { id: 5, name: "LinkUp" }],
    ["2: Polling\n", { id: 2, name: "Polling" }],
    ["3: Disabled\n", { id: 3, name: "Disabled" }],
    ["4: PortConfigurationTraining\n", { id: 4, name: "PortConfigurationTraining" }],
    ["6: LinkErrorRecovery\n", { id: 6, name: "LinkErrorRecovery" }],
    ["7: Phy Test\n", { id: 7, name: "Phy Test" }],
    ["0: <unknown>\n", { id: 0, name: "<unknown>" }],
    ["12: <unknown>\n", { id: 12, name: "<unknown>" }],
    ["5: Polling\n", SysfsParseError],
    ["LinkUp\n", SysfsParseError],
  ]);
});

describe("parseRate", () => {
  table(parseRate, [
    ["400 Gb/sec (4X NDR)\n", { rateGbps: 400, width: 4, speed: "NDR" }],
    ["400 Gb/sec (4X NDR)", { rateGbps: 400, width: 4, speed: "NDR" }],
    ["200 Gb/sec (2X NDR)\n", { rateGbps: 200, width: 2, speed: "NDR" }],
    ["200 Gb/sec (4X HDR)\n", { rateGbps: 200, width: 4, speed: "HDR" }],
    ["100 Gb/sec (1X NDR)\n", { rateGbps: 100, width: 1, speed: "NDR" }],
    ["2.5 Gb/sec (1X SDR)\n", { rateGbps: 2.5, width: 1, speed: "SDR" }],
    ["10 Gb/sec (4X SDR)\n", { rateGbps: 10, width: 4, speed: "SDR" }],
    ["10 Gb/sec (4X)\n", { rateGbps: 10, width: 4, speed: "SDR" }],
    ["40 Gb/sec (4X FDR10)\n", { rateGbps: 40, width: 4, speed: "FDR10" }],
    ["56 Gb/sec (4X FDR)\n", { rateGbps: 56, width: 4, speed: "FDR" }],
    ["100 Gb/sec (4X EDR)\n", { rateGbps: 100, width: 4, speed: "EDR" }],
    ["800 Gb/sec (4X XDR)\n", { rateGbps: 800, width: 4, speed: "XDR" }],
    ["300 Gb/sec (12X EDR)\n", { rateGbps: 300, width: 12, speed: "EDR" }],
    ["400 Gb/s (4X NDR)\n", SysfsParseError],
    ["400 Gb/sec (3X NDR)\n", SysfsParseError],
    ["400 Gb/sec (4X QQR)\n", SysfsParseError],
    ["400\n", SysfsParseError],
  ]);

  it("reads back what the kernel's rate_show prints for every width and speed", () => {
    const speeds = Object.keys(IB_LANE_RATE_GBPS) as IbSpeed[];
    fc.assert(
      fc.property(
        fc.constantFrom(1, 2, 4, 8, 12),
        fc.constantFrom(...speeds),
        fc.boolean(),
        (width, speed, newline) => {
          // rate_show: deci-Gb/s per lane × width, printed "%d%s" with ".5" for a remainder.
          const deci = Math.round(IB_LANE_RATE_GBPS[speed] * 10) * width;
          const text = `${Math.floor(deci / 10)}${deci % 10 ? ".5" : ""} Gb/sec (${width}X ${speed})${newline ? "\n" : ""}`;
          const rate = parseRate(text);
          assert.equal(rate.width, width);
          assert.equal(rate.speed, speed);
          assert.equal(rate.rateGbps, deci / 10);
        },
      ),
    );
  });
});

describe("parseLinkLayer", () => {
  table(parseLinkLayer, [
    ["InfiniBand\n", "InfiniBand"],
    ["Ethernet", "Ethernet"],
    ["Unknown\n", "Unknown"],
    ["infiniband\n", SysfsParseError],
  ]);
});

describe("parseHex (lid, sm_lid, cap_mask, PCI ids)", () => {
  table(parseHex, [
    ["0x1c\n", 28],
    ["0x1", 1],
    ["0xffff\n", 0xffff],
    ["0x0\n", 0],
    ["0xa751e848\n", 0xa751e848],
    ["0x030200\n", 0x030200],
    ["28\n", SysfsParseError],
    ["1c\n", SysfsParseError],
    ["0x\n", SysfsParseError],
  ]);

  it("reads any LID the kernel prints with 0x%x", () => {
    fc.assert(fc.property(fc.integer({ min: 0, max: 0xffff }), (lid) => parseHex(`0x${lid.toString(16)}\n`) === lid));
  });
});

describe("parseDecimal and parseNumaNode", () => {
  table(parseDecimal, [
    ["0\n", 0],
    ["16", 16],
    ["-1\n", -1],
    ["x16\n", SysfsParseError],
  ]);
  table(parseNumaNode, [
    ["0\n", 0],
    ["1", 1],
    ["-1\n", undefined],
    ["-2\n", SysfsParseError],
  ]);
});

describe("parseCounter", () => {
  table(parseCounter, [
    ["0\n", 0n],
    ["65535\n", 65535n],
    ["18446744073709551615\n", 18446744073709551615n],
    ["4812337550112", 4812337550112n],
    ["N/A (no PMA)\n", undefined],
    ["N/A (no PMA)", undefined],
    ["18446744073709551616\n", SysfsParseError],
    ["-1\n", SysfsParseError],
    ["12 \n", SysfsParseError],
    ["0x10\n", SysfsParseError],
    ["\n", SysfsParseError],
  ]);

  it("round-trips every u64 with or without the newline", () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), fc.boolean(), (n, newline) => {
        return parseCounter(`${n}${newline ? "\n" : ""}`) === n;
      }),
    );
  });
});

describe("GIDs, GID types, node type, PCIe speed", () => {
  table(parseGidType, [
    ["IB/RoCE v1\n", "IB/RoCE v1"],
    ["RoCE v2", "RoCE v2"],
    ["RoCE v3\n", SysfsParseError],
  ]);
  table(parseGid, [
    ["fe80:0000:0000:0000:a088:c203:0030:18c4\n", "fe80:0000:0000:0000:a088:c203:0030:18c4"],
    ["fe80::1\n", SysfsParseError],
  ]);
  table(parseNodeType, [
    ["1: CA\n", "CA"],
    ["2: SWITCH", "SWITCH"],
    ["CA\n", SysfsParseError],
  ]);
  table(parsePcieSpeed, [
    ["32.0 GT/s PCIe\n", 32],
    ["16.0 GT/s PCIe\n", 16],
    ["2.5 GT/s PCIe", 2.5],
    ["8 GT/s\n", 8],
    ["Unknown\n", undefined],
    ["Unknown speed\n", undefined],
    ["fast\n", SysfsParseError],
  ]);
});

describe("state names", () => {
  it("accepts exactly the kernel's name for each id", () => {
    for (const [id, name] of PORT_STATE_NAMES.entries()) {
      assert.deepEqual(parsePortState(`${id}: ${name}\n`), { id, name });
    }
    for (const [id, name] of PHYS_STATE_NAMES.entries()) {
      assert.deepEqual(parsePhysState(`${id}: ${name}\n`), { id, name });
    }
  });
});

describe("PCI addresses", () => {
  table(toSysfsPciAddress, [
    ["00000000:1B:00.0", "0000:1b:00.0"],
    ["0000:1B:00.0", "0000:1b:00.0"],
    ["0000:1b:00.0", "0000:1b:00.0"],
    ["00000000:DF:00.0\n", "0000:df:00.0"],
    ["00010000:e1:00.1", "10000:e1:00.1"],
    ["0000:1b:00", SysfsParseError],
    ["1b:00.0", SysfsParseError],
    ["0000:1b:20.0", SysfsParseError],
  ]);
  table(toNvmlBusId, [
    ["0000:1b:00.0", "00000000:1B:00.0"],
    ["0000:c3:00.0", "00000000:C3:00.0"],
  ]);

  it("NVML and sysfs forms convert into each other", () => {
    fc.assert(
      fc.property(
        fc.record({
          domain: fc.integer({ min: 0, max: 0xffff }),
          bus: fc.integer({ min: 0, max: 0xff }),
          device: fc.integer({ min: 0, max: 0x1f }),
          function: fc.integer({ min: 0, max: 7 }),
        }),
        (a) => {
          const nvml = formatNvmlBusId(a);
          const sysfs = formatSysfsPciAddress(a);
          assert.equal(toSysfsPciAddress(nvml), sysfs);
          assert.equal(toNvmlBusId(sysfs), nvml);
          assert.deepEqual(parsePciAddress(nvml), { ...a });
        },
      ),
    );
  });
});
