import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import { type Nvml, openNvml } from "../../src/nvml/library.js";
import { packageRoot } from "../../src/nvml/loader.js";
import { createSimWorld, type SimWorld } from "./sim-world.js";

const run = promisify(execFile);
const CHILD = join(packageRoot(), "test", "nvml", "child-create-instance.ts");

let world: SimWorld;
let nvml: Nvml;

before(async () => {
  world = createSimWorld("dgx-h100");
  nvml = await openNvml();
});
after(() => {
  nvml?.shutdown();
  world?.dispose();
});

describe("state shared between processes", () => {
  it("shows this process the GPU instance another process created, and its XID", async () => {
    const gpu = nvml.device(3);
    gpu.mig.setMode(true);
    const set = nvml.createEventSet();
    set.register(gpu, ["xidCriticalError"]);
    try {
      // The child inherits TESSERA_SIM_STATE and TESSERA_NVML_LIBRARY from the world.
      const { stdout } = await run(process.execPath, ["--import", "tsx", CHILD, "3"], {
        cwd: packageRoot(),
        env: process.env,
        timeout: 60_000,
      });
      const made = JSON.parse(stdout.trim()) as { pid: number; gi: number; ci: number; uuid: string };
      assert.notEqual(made.pid, process.pid);

      const gi = gpu.mig.gpuInstanceById(made.gi);
      assert.ok(gi, `GPU instance ${made.gi} is visible here`);
      assert.deepEqual(gi.info(), { id: made.gi, profileId: 9, placement: { start: 4, size: 4 } });
      assert.equal(gi.computeInstanceById(made.ci)?.info().profileId, 2);
      assert.deepEqual(
        gpu.migDevices().map((d) => d.uuid()),
        [made.uuid],
      );
      assert.equal(gpu.mig.remainingCapacity(9), 1);

      const event = await set.wait(2000);
      assert.equal(event?.data, 94n);
      assert.equal(event?.gpuInstanceId, made.gi);
    } finally {
      await set.free();
    }
  });
});
