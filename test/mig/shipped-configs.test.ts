// NVIDIA's shipped mig-parted configs (gpu-operator's default ConfigMap) must
// parse unchanged and plan on the GPUs they are written for.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { InputError } from "../../src/errors.js";
import { type HostPlan, planHost } from "../../src/mig/plan.js";
import { resolveMigConfig } from "../../src/mig/select.js";
import { simulateApply } from "../../src/mig/simulate.js";
import { parseMigSpec } from "../../src/mig/spec.js";
import type { GpuGeometry, HostGpu } from "../../src/mig/types.js";
import { A30_24GB, A100_40GB, A100_80GB, H100_80GB, H200_141GB, hostGpu, migUuid } from "./geometries.js";

const FIXTURE = "test/fixtures/mig/gpu-operator-default.yaml";
const spec = parseMigSpec(readFileSync(FIXTURE, "utf8"), FIXTURE);

function host(geometry: GpuGeometry, gpus = 8): HostGpu[] {
  return Array.from({ length: gpus }, (_, i) => hostGpu(i, geometry));
}

function apply(gpus: readonly HostGpu[], plan: HostPlan): HostGpu[] {
  return gpus.map((gpu) => {
    const p = plan.gpus.find((g) => g.gpu.index === gpu.index);
    if (!p) return gpu;
    assert.ok(p.feasible);
    return { ...gpu, layout: simulateApply(gpu.layout, p, migUuid) };
  });
}

/** Configs written for each model, and how many instances each gives one GPU. */
const MEANT_FOR: [string, GpuGeometry, [string, number][]][] = [
  [
    "H100-80GB (0x233010DE)",
    H100_80GB,
    [
      ["all-disabled", 0],
      ["all-enabled", 0],
      ["all-1g.10gb", 7],
      ["all-1g.10gb.me", 1],
      ["all-1g.20gb", 4],
      ["all-2g.20gb", 3],
      ["all-3g.40gb", 2],
      ["all-4g.40gb", 1],
      ["all-7g.80gb", 1],
      ["all-balanced", 4],
    ],
  ],
  [
    "A100-80GB (0x20B210DE)",
    A100_80GB,
    [
      ["all-1g.10gb", 7],
      ["all-1g.20gb", 4],
      ["all-3g.40gb", 2],
      ["all-balanced", 4],
    ],
  ],
  [
    "A100-40GB (0x20B010DE)",
    A100_40GB,
    [
      ["all-1g.5gb", 7],
      ["all-1g.5gb.me", 1],
      ["all-1g.10gb", 4],
      ["all-2g.10gb", 3],
      ["all-3g.20gb", 2],
      ["all-4g.20gb", 1],
      ["all-7g.40gb", 1],
      ["all-balanced", 4],
    ],
  ],
  [
    "H200-141GB (0x233510DE)",
    H200_141GB,
    [
      ["all-1g.18gb", 7],
      ["all-1g.18gb.me", 1],
      ["all-1g.35gb", 4],
      ["all-2g.35gb", 3],
      ["all-3g.71gb", 2],
      ["all-4g.71gb", 1],
      ["all-7g.141gb", 1],
      ["all-balanced", 4],
    ],
  ],
  [
    "A30-24GB (0x20B710DE)",
    A30_24GB,
    [
      ["all-1g.6gb", 4],
      ["all-1g.6gb.me", 1],
      ["all-2g.12gb", 2],
      ["all-2g.12gb.me", 1],
      ["all-4g.24gb", 1],
      ["all-balanced", 3],
    ],
  ],
];

describe("NVIDIA's shipped configs", () => {
  for (const [label, geometry, configs] of MEANT_FOR) {
    it(`plan on ${label}, from empty and from each other`, () => {
      let gpus = host(geometry);
      for (const [name, count] of configs) {
        const resolved = resolveMigConfig(spec, name, gpus);
        assert.equal(resolved.targets.length, 8, `${name} selects every GPU`);
        const plan = planHost(resolved.targets);
        assert.ok(plan.feasible, `${name}: ${JSON.stringify(plan.gpus.find((g) => !g.feasible))}`);
        gpus = apply(gpus, plan);
        for (const gpu of gpus) assert.equal(gpu.layout.instances.length, count, `${name} on GPU ${gpu.index}`);
        // Applying the same config again is a no-op.
        const again = planHost(resolveMigConfig(spec, name, gpus).targets);
        assert.ok(
          again.gpus.every((g) => g.feasible && !g.changed),
          `${name} twice`,
        );
      }
    });
  }

  it("either plan or are rejected for naming a profile the model lacks, on every reference GPU", () => {
    for (const [, geometry] of MEANT_FOR) {
      for (const config of spec.configs) {
        try {
          const plan = planHost(resolveMigConfig(spec, config.name, host(geometry, 1)).targets);
          assert.ok(plan.feasible, `${config.name} on ${geometry.model}`);
        } catch (err) {
          assert.ok(err instanceof InputError, String(err));
          assert.match(err.message, /unknown MIG profile '[^']+' for GPU 0 .*; valid profiles on this model: /);
          assert.equal(err.file, FIXTURE);
        }
      }
    }
  });
});
