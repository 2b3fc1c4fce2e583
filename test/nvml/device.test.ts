import assert from "node:assert/strict";
import { after, before, beforeEach, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { FIELD_IDS } from "../../src/nvml/constants.js";
import { NvmlError } from "../../src/nvml/errors.js";
import { type Nvml, openNvml } from "../../src/nvml/library.js";
import { createSimWorld, type SimWorld } from "./sim-world.js";

let world: SimWorld;
let nvml: Nvml;

before(async () => {
  world = createSimWorld("dgx-h100");
  nvml = await openNvml(); // through TESSERA_NVML_LIBRARY, as the agent loads it
});
after(() => {
  nvml?.shutdown();
  world?.dispose();
});
beforeEach(() => world.reset("dgx-h100"));

function nvmlError(code: string, operation?: string) {
  return (err: unknown) => {
    assert.ok(err instanceof NvmlError, `expected NvmlError, got ${String(err)}`);
    assert.equal(err.code, code);
    if (operation !== undefined) assert.equal(err.operation, operation);
    return true;
  };
}

describe("system", () => {
  it("loads the simulator named by TESSERA_NVML_LIBRARY and reports driver, NVML and CUDA versions", () => {
    assert.equal(nvml.libraryPath, world.libraryPath);
    const driver = nvml.driverVersion();
    assert.match(driver, /^\d{3}\.\d+\.\d+$/);
    assert.ok(nvml.nvmlVersion().endsWith(driver), "NVML version embeds the driver version");
    const cuda = nvml.cudaDriverVersion();
    assert.ok(cuda !== undefined && cuda.major >= 12);
    assert.equal(cuda.raw, cuda.major * 1000 + cuda.minor * 10);
    assert.equal(nvml.deviceCount(), 8);
  });
});

describe("device identity", () => {
  it("names a DGX H100's GPUs with distinct UUIDs, serials, bus ids and minor numbers", () => {
    const gpus = nvml.devices();
    assert.equal(gpus.length, 8);
    const seen = {
      uuid: new Set<string>(),
      busId: new Set<string>(),
      minor: new Set<number>(),
      serial: new Set<string>(),
    };
    for (const [i, gpu] of gpus.entries()) {
      assert.equal(gpu.index, i);
      assert.equal(gpu.nvmlIndex(), i);
      assert.equal(gpu.isMig, false);
      assert.equal(gpu.name(), "NVIDIA H100 80GB HBM3");
      const uuid = gpu.uuid();
      assert.match(uuid, /^GPU-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
      seen.uuid.add(uuid);
      const pci = gpu.pciInfo();
      assert.match(pci.busId, /^[0-9A-F]{8}:[0-9A-F]{2}:[0-9A-F]{2}\.0$/);
      assert.equal(pci.busIdLegacy, pci.busId.slice(4));
      assert.equal(pci.bus, Number.parseInt(pci.busId.slice(9, 11), 16));
      assert.equal(pci.pciDeviceId, 0x233010de);
      assert.equal(pci.deviceId, 0x2330);
      assert.equal(pci.vendorId, 0x10de);
      assert.equal(pci.pciSubSystemId & 0xffff, 0x10de);
      seen.busId.add(pci.busId);
      seen.minor.add(gpu.minorNumber() as number);
      seen.serial.add(gpu.serial() as string);
      assert.deepEqual(gpu.architecture(), { id: 9, name: "Hopper" });
      assert.deepEqual(gpu.cudaComputeCapability(), { major: 9, minor: 0 });
      assert.equal(gpu.attributes(), undefined, "attributes are a MIG-device query");
    }
    assert.equal(seen.uuid.size, 8);
    assert.equal(seen.busId.size, 8);
    assert.equal(seen.minor.size, 8);
    assert.equal(seen.serial.size, 8);
  });

  it("keeps the raw handle private", () => {
    const gpu = nvml.device(0);
    gpu.uuid();
    const visible = [...Object.values(gpu), ...Object.values(gpu.ref)];
    assert.equal(
      visible.some((v) => typeof v === "bigint"),
      false,
    );
    assert.deepEqual(JSON.parse(JSON.stringify(gpu)), { index: 0, isMig: false });
  });

  it("finds the same GPU by UUID and by PCI bus id (NVML and legacy form)", () => {
    const gpu = nvml.device(5);
    const byUuid = nvml.deviceByUuid(gpu.uuid());
    assert.ok(byUuid.equals(gpu));
    assert.equal(byUuid.index, 5);
    const { busId, busIdLegacy } = gpu.pciInfo();
    assert.equal(nvml.deviceByPciBusId(busId).index, 5);
    assert.ok(nvml.deviceByPciBusId(busIdLegacy).equals(gpu));
  });

  it("describes an A100 host after switching presets", () => {
    world.reset("dgx-a100");
    const gpu = nvml.device(0);
    assert.equal(gpu.name(), "NVIDIA A100-SXM4-40GB");
    assert.deepEqual(gpu.architecture(), { id: 7, name: "Ampere" });
    assert.deepEqual(gpu.cudaComputeCapability(), { major: 8, minor: 0 });
    assert.equal(gpu.pciInfo().pciDeviceId, 0x20b010de);
  });
});

describe("telemetry", () => {
  it("reads memory through the v2 call, reserved included", () => {
    const memory = nvml.device(0).memory();
    assert.ok(memory);
    assert.equal(nvml.features.memoryInfo, "v2");
    assert.equal(memory.totalBytes, 81559 * 2 ** 20);
    assert.ok(memory.reservedBytes !== undefined && memory.reservedBytes > 0);
    assert.equal(memory.freeBytes + memory.usedBytes + memory.reservedBytes, memory.totalBytes);
    const bar1 = nvml.device(0).bar1Memory();
    assert.equal(bar1?.totalBytes, 131072 * 2 ** 20);
  });

  it("reads temperature, thresholds, power and clocks in their units", () => {
    const gpu = nvml.device(0);
    const celsius = gpu.temperatureCelsius();
    assert.ok(celsius !== undefined && celsius > 15 && celsius < 90, `${celsius} °C`);
    assert.equal(nvml.features.temperature, "nvmlDeviceGetTemperatureV");
    assert.deepEqual(gpu.temperatureThresholds(), {
      shutdownCelsius: 92,
      slowdownCelsius: 89,
      memoryMaxCelsius: 95,
      gpuMaxCelsius: 87,
    });
    assert.equal(gpu.enforcedPowerLimitMilliwatts(), 700_000);
    assert.equal(gpu.powerManagementLimitMilliwatts(), 700_000);
    const power = gpu.powerUsageMilliwatts();
    assert.ok(power !== undefined && power > 10_000 && power < 700_000, `${power} mW`);
    assert.deepEqual(gpu.maxClocks(), { graphicsMHz: 1980, smMHz: 1980, memoryMHz: 2619, videoMHz: 1545 });
    const clocks = gpu.clocks();
    for (const [name, mhz] of Object.entries(clocks)) {
      const max = gpu.maxClocks()[name as keyof typeof clocks];
      assert.ok(mhz !== undefined && max !== undefined && mhz > 0 && mhz <= max, `${name} ${mhz} MHz`);
    }
    const utilization = gpu.utilization();
    assert.ok(utilization && utilization.gpuPercent >= 0 && utilization.gpuPercent <= 100);
  });

  it("follows simulator overrides of temperature, power, throttle reasons and PCIe link", () => {
    const gpu = nvml.device(3);
    world.sim.setTemperature(3, 83);
    world.sim.setPower(3, 612_345);
    world.sim.setThrottle(3, 0x44n);
    assert.equal(gpu.temperatureCelsius(), 83);
    assert.equal(gpu.powerUsageMilliwatts(), 612_345);
    assert.deepEqual(gpu.clockEventReasons(), { mask: 0x44n, names: ["swPowerCap", "hwThermalSlowdown"] });
    assert.equal(nvml.features.clockEventReasons, "nvmlDeviceGetCurrentClocksEventReasons");
    const supported = gpu.supportedClockEventReasons();
    assert.ok(supported && (supported.mask & 0x44n) === 0x44n);

    world.sim.setThrottle(3, undefined);
    assert.deepEqual(gpu.clockEventReasons()?.names, ["gpuIdle"], "an idle GPU reports GpuIdle");
    assert.equal(nvml.device(4).temperatureCelsius() === 83, false, "other GPUs keep their own values");

    world.sim.setPcieLink(3, { generation: 3, width: 8 });
    world.sim.startProcess({ gpu: 3, memoryMiB: 1024, smPercent: 40, name: "train" }); // an idle link trains down
    assert.deepEqual(gpu.pcieLink(), { generation: 3, width: 8, maxGeneration: 5, maxWidth: 16 });
  });

  it("counts energy in millijoules, monotonically", async () => {
    const gpu = nvml.device(0);
    const first = gpu.totalEnergyMillijoules();
    await sleep(30);
    const second = gpu.totalEnergyMillijoules();
    assert.ok(first !== undefined && second !== undefined && second > first, `${first} → ${second}`);
  });

  it("reads ECC mode and counters, remapped rows, retired pages and PCIe replays", () => {
    const gpu = nvml.device(1);
    assert.deepEqual(gpu.eccMode(), { current: true, pending: true });
    world.sim.setEcc(1, { sbeVolatile: 3, dbeVolatile: 1, sbeAggregate: 40, dbeAggregate: 2 });
    assert.deepEqual(gpu.eccErrors(), {
      volatileCorrected: 3,
      volatileUncorrected: 1,
      aggregateCorrected: 40,
      aggregateUncorrected: 2,
    });
    world.sim.setRemappedRows(1, { corrected: 2, uncorrected: 1, pending: true, failure: false });
    assert.deepEqual(gpu.remappedRows(), { corrected: 2, uncorrected: 1, pending: true, failureOccurred: false });
    world.sim.setRetiredPages(1, { sbePages: 5, dbePages: 2, pending: true });
    // The counts come from the size query, which answers INSUFFICIENT_SIZE with the count.
    assert.deepEqual(gpu.retiredPages(), { singleBitEccPages: 5, doubleBitEccPages: 2, pending: true });
    assert.equal(gpu.retiredPagesPending(), true);
    assert.equal(gpu.pcieReplayCounter(), 0);
    world.sim.addPcieReplays(1, 17);
    assert.equal(gpu.pcieReplayCounter(), 17);
  });

  it("returns field values with a return code per entry", () => {
    world.sim.addPcieReplays(0, 9);
    const values = nvml.device(0).fieldValues([FIELD_IDS.eccCurrent, FIELD_IDS.pcieReplayCounter, 200, 9999]);
    assert.deepEqual(
      values.map((v) => [v.fieldId, v.nvmlReturn, v.value]),
      [
        [1, "NVML_SUCCESS", 1],
        [94, "NVML_SUCCESS", 9n],
        [200, "NVML_ERROR_NOT_SUPPORTED", undefined],
        [9999, "NVML_ERROR_INVALID_ARGUMENT", undefined],
      ],
    );
    const nowMicros = Date.now() * 1000;
    for (const v of values) assert.ok(Math.abs(v.timestampMicros - nowMicros) < 60e6, "µs since the epoch");
    assert.deepEqual(nvml.device(0).fieldValues([]), []);
  });

  it("keeps per-GPU telemetry cheap enough for a sweep of 8 GPUs", () => {
    const gpus = nvml.devices();
    const sweep = () => {
      for (const gpu of gpus) {
        gpu.memory();
        gpu.utilization();
        gpu.temperatureCelsius();
        gpu.powerUsageMilliwatts();
        gpu.totalEnergyMillijoules();
        gpu.clockMHz("sm");
        gpu.clockMHz("memory");
        gpu.clockEventReasons();
      }
    };
    sweep();
    const start = process.hrtime.bigint();
    const rounds = 50;
    for (let i = 0; i < rounds; i++) sweep();
    const perSweepMs = Number(process.hrtime.bigint() - start) / 1e6 / rounds;
    // Generous bound (shared 2-core CI machine); the real target is measured by bench/.
    assert.ok(perSweepMs < 5, `${perSweepMs.toFixed(3)} ms per sweep`);
  });
});

describe("processes", () => {
  it("lists compute processes (sized through INSUFFICIENT_SIZE) with memory in bytes and names", () => {
    const gpu = nvml.device(2);
    assert.deepEqual(gpu.computeProcesses(), []);
    const pids = [
      world.sim.startProcess({ gpu: 2, memoryMiB: 1024, smPercent: 10, name: "train-a" }),
      world.sim.startProcess({ gpu: 2, memoryMiB: 2048, smPercent: 10, name: "train-b" }),
      world.sim.startProcess({ gpu: 2, memoryMiB: 512, smPercent: 10, name: "infer" }),
    ];
    world.sim.startProcess({ gpu: 3, memoryMiB: 64, smPercent: 5, name: "elsewhere" });
    const listed = gpu.computeProcesses();
    assert.deepEqual(
      listed?.map((p) => [p.pid, p.usedGpuMemoryBytes, p.gpuInstanceId, p.computeInstanceId]),
      [
        [pids[0], 1024 * 2 ** 20, undefined, undefined],
        [pids[1], 2048 * 2 ** 20, undefined, undefined],
        [pids[2], 512 * 2 ** 20, undefined, undefined],
      ],
    );
    assert.equal(nvml.processName(pids[1] as number), "train-b");
    assert.equal(nvml.processName(999_999), undefined);
    world.sim.stopProcess(pids[0] as number);
    assert.equal(gpu.computeProcesses()?.length, 2);
  });
});

describe("topology", () => {
  it("reports the common ancestor of two GPUs, symmetric and nearest for neighbours", () => {
    const gpus = nvml.devices();
    const a = gpus[0];
    assert.ok(a);
    const levels = gpus.slice(1).map((b) => {
      const ab = a.commonAncestor(b);
      assert.ok(ab !== undefined);
      assert.deepEqual(b.commonAncestor(a), ab);
      assert.ok(["single", "multiple", "hostbridge", "node", "system"].includes(ab.name), ab.name);
      return ab.level;
    });
    assert.equal(a.commonAncestor(a)?.name, "internal");
    assert.ok(Math.max(...levels) > Math.min(...levels), "a DGX spans more than one PCIe level");
  });
});

describe("events supported", () => {
  it("lists the event types a GPU can deliver", () => {
    const supported = nvml.device(0).supportedEventTypes();
    assert.ok(supported?.names.includes("xidCriticalError"));
    assert.ok(supported?.names.includes("migConfigChange"));
    assert.ok(supported?.names.includes("doubleBitEccError"));
  });
});

describe("error paths", () => {
  it("throws INVALID_ARGUMENT for an index past the last GPU", () => {
    assert.throws(
      () => nvml.device(99),
      (err: unknown) => {
        nvmlError("TESSERA_NVML_INVALID_ARGUMENT", "nvmlDeviceGetHandleByIndex_v2")(err);
        assert.equal((err as NvmlError).device?.index, 99);
        assert.match((err as NvmlError).message, /Invalid Argument/, "carries nvmlErrorString's text");
        return true;
      },
    );
  });

  it("throws NOT_FOUND for an unknown UUID", () => {
    assert.throws(
      () => nvml.deviceByUuid("GPU-00000000-0000-0000-0000-000000000000"),
      nvmlError("TESSERA_NVML_NOT_FOUND", "nvmlDeviceGetHandleByUUID"),
    );
  });

  it("reports a lost GPU on every call, naming it, while the other GPUs keep working", () => {
    const gpu = nvml.device(2);
    const uuid = gpu.uuid();
    world.sim.setLost(2, true);
    assert.throws(
      () => gpu.name(),
      (err: unknown) => {
        nvmlError("TESSERA_NVML_GPU_IS_LOST", "nvmlDeviceGetName")(err);
        assert.deepEqual((err as NvmlError).device, { index: 2, uuid });
        assert.match((err as NvmlError).message, new RegExp(`GPU 2 \\(${uuid}\\)`));
        return true;
      },
    );
    // Lost is not "not supported": telemetry getters throw instead of returning absent values.
    assert.throws(() => gpu.temperatureCelsius(), nvmlError("TESSERA_NVML_GPU_IS_LOST"));
    assert.throws(() => gpu.memory(), nvmlError("TESSERA_NVML_GPU_IS_LOST"));
    assert.throws(() => nvml.device(2), nvmlError("TESSERA_NVML_GPU_IS_LOST", "nvmlDeviceGetHandleByIndex_v2"));
    assert.throws(() => nvml.devices(), nvmlError("TESSERA_NVML_GPU_IS_LOST"));

    const slots = nvml.deviceSlots();
    assert.equal(slots.length, 8);
    for (const slot of slots) {
      if (slot.index === 2) assert.ok("error" in slot && slot.error.nvmlCode === "NVML_ERROR_GPU_IS_LOST");
      else assert.ok("device" in slot && slot.device.name().startsWith("NVIDIA H100"));
    }

    world.sim.setLost(2, false);
    assert.equal(gpu.name(), "NVIDIA H100 80GB HBM3");
  });

  it("treats NOT_SUPPORTED on a MIG-enabled parent as absent, not zero", () => {
    const gpu = nvml.device(0);
    assert.notEqual(gpu.utilization(), undefined);
    assert.notEqual(gpu.remappedRows(), undefined);
    gpu.mig.setMode(true);
    assert.equal(gpu.utilization(), undefined);
    assert.equal(gpu.remappedRows(), undefined);
    assert.notEqual(nvml.device(1).utilization(), undefined, "GPU 1 has MIG off");
    assert.notEqual(gpu.memory(), undefined);
  });
});
