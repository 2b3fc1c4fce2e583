import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { GPM_METRICS_MAX, layout, type NvmlStructKey, structVersion } from "../../src/nvml/ffi-types.js";
import { packageRoot } from "../../src/nvml/loader.js";

const HEADER_DIR = join(packageRoot(), "native", "nvml-sim", "include");

// reference/nvml.md §1.1 (gcc, x86_64, NVML 12.4–13.3 headers).
const TABLE: { readonly [K in NvmlStructKey]?: { size: number; off?: Record<string, number> } } = {
  pciInfo: {
    size: 68,
    off: { busIdLegacy: 0, domain: 16, bus: 20, device: 24, pciDeviceId: 28, pciSubSystemId: 32, busId: 36 },
  },
  memory: { size: 24, off: { total: 0, free: 8, used: 16 } },
  memoryV2: { size: 40, off: { version: 0, total: 8, reserved: 16, free: 24, used: 32 } },
  utilization: { size: 8 },
  processInfo: { size: 24, off: { pid: 0, usedGpuMemory: 8, gpuInstanceId: 16, computeInstanceId: 20 } },
  processInfoV1: { size: 16, off: { pid: 0, usedGpuMemory: 8 } },
  temperature: { size: 12 },
  giPlacement: { size: 8 },
  giProfileV1: { size: 48, off: { id: 0, isP2pSupported: 4, ofaCount: 36, memorySizeMB: 40 } },
  giProfileV2: { size: 152, off: { version: 0, id: 4, isP2pSupported: 8, ofaCount: 40, memorySizeMB: 48, name: 56 } },
  giProfileV3: {
    size: 152,
    off: { version: 0, id: 4, sliceCount: 8, ofaCount: 36, memorySizeMB: 40, name: 48, capabilities: 144 },
  },
  giInfo: { size: 24, off: { device: 0, id: 8, profileId: 12, placement: 16 } },
  ciPlacement: { size: 8 },
  ciProfileV1: { size: 36 },
  ciProfileV2: { size: 136, off: { version: 0, id: 4, name: 40 } },
  ciProfileV3: { size: 140, off: { name: 40, capabilities: 136 } },
  ciInfo: { size: 32, off: { device: 0, gpuInstance: 8, id: 16, profileId: 20, placement: 24 } },
  attributes: { size: 40, off: { memorySizeMB: 32 } },
  eventData: { size: 32, off: { device: 0, eventType: 8, eventData: 16, gpuInstanceId: 24, computeInstanceId: 28 } },
  value: { size: 8 },
  fieldValue: {
    size: 40,
    off: { fieldId: 0, scopeId: 4, timestamp: 8, latencyUsec: 16, valueType: 24, nvmlReturn: 28, value: 32 },
  },
  gpmMetric: { size: 40, off: { metricId: 0, nvmlReturn: 4, value: 8, metricInfo: 16 } },
  gpmMetricsGet: { size: 24 + 40 * 98, off: { version: 0, numMetrics: 4, sample1: 8, sample2: 16, metrics: 24 } },
  gpmSupport: { size: 8 },
  bar1Memory: { size: 24 },
};

describe("struct layouts", () => {
  let dir: string;
  let compiled: Map<string, number>;
  let header: string;

  before(() => {
    header = readFileSync(join(HEADER_DIR, "nvml.h"), "utf8");
    dir = mkdtempSync(join(tmpdir(), "tessera-layout-"));
    // One printf per struct size and member offset, for every type the binding declares and the header defines.
    const lines: string[] = [];
    for (const L of Object.values(layout())) {
      if (!definedInHeader(header, L.name)) continue;
      lines.push(`  printf("%s %zu\\n", "${L.name}", sizeof(${L.name}));`);
      for (const member of Object.keys(L.off)) {
        lines.push(`  printf("%s.%s %zu\\n", "${L.name}", "${member}", offsetof(${L.name}, ${member}));`);
      }
    }
    for (const macro of [
      "nvmlMemory_v2",
      "nvmlTemperature_v1",
      "nvmlGpuInstanceProfileInfo_v2",
      "nvmlGpuInstanceProfileInfo_v3",
      "nvmlComputeInstanceProfileInfo_v2",
      "nvmlComputeInstanceProfileInfo_v3",
      "NVML_GPM_METRIC_MAX",
    ]) {
      lines.push(`  printf("%s %u\\n", "${macro}", (unsigned)(${macro}));`);
    }
    const source = `#include <stddef.h>\n#include <stdio.h>\n#include "nvml.h"\nint main(void) {\n${lines.join("\n")}\n  return 0;\n}\n`;
    writeFileSync(join(dir, "layout.c"), source);
    execFileSync("cc", ["-std=c11", "-Wall", "-I", HEADER_DIR, "-o", join(dir, "layout"), join(dir, "layout.c")], {
      stdio: "pipe",
    });
    const output = execFileSync(join(dir, "layout"), { encoding: "utf8" });
    compiled = new Map(
      output
        .trim()
        .split("\n")
        .map((line) => {
          const [key, value] = line.split(" ");
          return [key as string, Number(value)] as const;
        }),
    );
  });

  after(() => rmSync(dir, { recursive: true, force: true }));

  it("struct sizes and offsets as koffi sees them match the C compiler's view of nvml.h", () => {
    let compared = 0;
    for (const L of Object.values(layout())) {
      if (!definedInHeader(header, L.name)) continue;
      assert.equal(L.size, compiled.get(L.name), `sizeof(${L.name})`);
      for (const [member, offset] of Object.entries(L.off)) {
        assert.equal(offset, compiled.get(`${L.name}.${member}`), `offsetof(${L.name}, ${member})`);
        compared++;
      }
    }
    // Guard against a silently empty comparison (e.g. a header that lost its typedefs).
    assert.ok(compared > 100, `only ${compared} offsets compared`);
  });

  it("builds version words that equal the header's NVML_STRUCT_VERSION macros", () => {
    const L = layout();
    assert.equal(structVersion(L.memoryV2.size, 2), compiled.get("nvmlMemory_v2"));
    assert.equal(structVersion(L.memoryV2.size, 2), 0x02000028);
    assert.equal(structVersion(L.temperature.size, 1), compiled.get("nvmlTemperature_v1"));
    assert.equal(structVersion(L.giProfileV2.size, 2), compiled.get("nvmlGpuInstanceProfileInfo_v2"));
    assert.equal(structVersion(L.giProfileV3.size, 3), compiled.get("nvmlGpuInstanceProfileInfo_v3"));
    assert.equal(structVersion(L.giProfileV3.size, 3), 0x03000098);
    assert.equal(structVersion(L.ciProfileV2.size, 2), compiled.get("nvmlComputeInstanceProfileInfo_v2"));
    assert.equal(structVersion(L.ciProfileV3.size, 3), compiled.get("nvmlComputeInstanceProfileInfo_v3"));
    assert.equal(structVersion(L.ciProfileV3.size, 3), 0x0300008c);
    assert.equal(GPM_METRICS_MAX, compiled.get("NVML_GPM_METRIC_MAX"));
  });

  it("matches the sizes and offsets recorded in reference/nvml.md §1.1", () => {
    const all = layout();
    for (const [key, expected] of Object.entries(TABLE) as [
      NvmlStructKey,
      { size: number; off?: Record<string, number> },
    ][]) {
      const L = all[key];
      assert.equal(L.size, expected.size, `sizeof(${L.name})`);
      for (const [member, offset] of Object.entries(expected.off ?? {})) {
        assert.equal((L.off as Record<string, number>)[member], offset, `offsetof(${L.name}, ${member})`);
      }
    }
  });
});

function definedInHeader(header: string, name: string): boolean {
  return new RegExp(`\\b${name}\\s*;`).test(header);
}
