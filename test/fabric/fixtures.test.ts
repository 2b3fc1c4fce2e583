// End to end over the generated sysfs trees: the healthy hosts, every fault
// variant, and the committed trees staying what the generator writes.
import assert from "node:assert/strict";
import { lstatSync, readdirSync, readFileSync, readlinkSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { collectFabric } from "../../src/fabric/collect.js";
import { loadExpectedFabric } from "../../src/fabric/expect-config.js";
import { scanSysfsGpus } from "../../src/fabric/gpu-source.js";
import { readBootId, readFabric } from "../../src/fabric/read.js";
import {
  BOOT_ID,
  COMMITTED_FIXTURES,
  FAULTS,
  type FaultName,
  hostFacts,
  writeHostFixture,
  writeHostTrees,
} from "../fixtures/make-sysfs.js";
import { gpusOf, portHealth, runFault, T0_MS, tempDir } from "./helpers.js";

const EXPECT = {
  "dgx-h100": join(import.meta.dirname, "..", "fixtures", "fabric", "expect-dgx-h100.yaml"),
  "dgx-a100": join(import.meta.dirname, "..", "fixtures", "fabric", "expect-dgx-a100.yaml"),
};

describe("reading the DGX H100 fixture", () => {
  const { sysfsRoot, procRoot } = COMMITTED_FIXTURES["dgx-h100"];
  const reading = readFabric({ sysfsRoot });
  const facts = hostFacts("dgx-h100");

  it("finds all 12 ConnectX-7 ports with no read problems", () => {
    assert.deepEqual(reading.problems, []);
    assert.deepEqual(
      reading.devices.map((d) => d.name),
      facts.nics.map((n) => n.name),
    );
  });

  it("reads device identity, PCI address, NUMA node and netdev of every NIC", () => {
    for (const n of facts.nics) {
      const d = reading.devices.find((x) => x.name === n.name);
      assert.ok(d, n.name);
      assert.equal(d.pciAddress, n.address);
      assert.equal(d.numaNode, n.numa);
      assert.deepEqual(d.netdevs, [n.netdev]);
      assert.equal(d.hcaType, "MT4129");
      assert.equal(d.fwVersion, "28.41.1000");
      assert.equal(d.nodeType, "CA");
      assert.match(d.pciPath ?? "", new RegExp(`^/devices/pci0000:[0-9a-f]{2}/.*/${n.address}$`));
      assert.ok(d.uverbs, `${n.name} has uverbs`);
    }
  });

  it("parses InfiniBand ports: hex LIDs, rate, GID, umad, extended counters", () => {
    const p = reading.devices.find((d) => d.name === "mlx5_0")?.ports[0];
    assert.ok(p);
    assert.equal(p.state?.name, "ACTIVE");
    assert.equal(p.physState?.name, "LinkUp");
    assert.deepEqual(p.rate, { rateGbps: 400, width: 4, speed: "NDR" });
    assert.equal(p.linkLayer, "InfiniBand");
    assert.equal(p.lid, 0x1c);
    assert.equal(p.smLid, 1);
    assert.equal(p.umad, "umad0");
    assert.equal(p.extendedCounters, true);
    assert.deepEqual(p.gidTypes, ["IB/RoCE v1"]);
    assert.match(p.defaultGid ?? "", /^fe80:0000:0000:0000:a088:c203:/);
    assert.equal(Object.keys(p.counters).length, 21);
    assert.equal(p.hwCountersLifespanMs, 10);
    assert.ok(!("lifespan" in p.hwCounters));
  });

  it("parses RoCE ports: Ethernet link layer, 2X NDR bond rate, RoCE v2 GIDs and their netdev", () => {
    const p = reading.devices.find((d) => d.name === "mlx5_7")?.ports[0];
    assert.ok(p);
    assert.equal(p.linkLayer, "Ethernet");
    assert.deepEqual(p.rate, { rateGbps: 200, width: 2, speed: "NDR" });
    assert.deepEqual(p.gidTypes, ["IB/RoCE v1", "RoCE v2"]);
    assert.equal(p.gidNetdev, "enp170s0f0np0");
    assert.equal(p.lid, 0);
    assert.ok("roce_slow_restart" in p.hwCounters);
  });

  it("reads files without a trailing newline like those with one", () => {
    const raw = readFileSync(join(sysfsRoot, "class/infiniband/mlx5_3/ports/1/rate"), "latin1");
    assert.ok(!raw.endsWith("\n"), "the fixture keeps a file without newline");
    const p = reading.devices.find((d) => d.name === "mlx5_3")?.ports[0];
    assert.deepEqual(p?.rate, { rateGbps: 400, width: 4, speed: "NDR" });
    assert.equal(p?.counters.symbol_error, 1n);
  });

  it("reads the boot id from the proc root", () => {
    assert.equal(readBootId(procRoot), BOOT_ID);
    assert.equal(readBootId(join(procRoot, "nowhere")), undefined);
  });

  it("finds the 8 GPUs at the simulator preset's bus ids, skipping NVSwitches", () => {
    assert.deepEqual(scanSysfsGpus(sysfsRoot), [
      { index: 0, pciBusId: "00000000:1B:00.0" },
      { index: 1, pciBusId: "00000000:43:00.0" },
      { index: 2, pciBusId: "00000000:52:00.0" },
      { index: 3, pciBusId: "00000000:61:00.0" },
      { index: 4, pciBusId: "00000000:9D:00.0" },
      { index: 5, pciBusId: "00000000:C3:00.0" },
      { index: 6, pciBusId: "00000000:D1:00.0" },
      { index: 7, pciBusId: "00000000:DF:00.0" },
    ]);
  });

  it("is healthy, each GPU PIX to its rail NIC (hosts.md), other NICs NODE or SYS", async () => {
    const expectations = await loadExpectedFabric(EXPECT["dgx-h100"]);
    const c = collectFabric(undefined, { sysfsRoot, procRoot, clock: () => T0_MS, expectations }, gpusOf("dgx-h100"));
    assert.equal(c.health.status, "healthy");
    assert.deepEqual(c.health.problems, []);
    const rails = ["mlx5_0", "mlx5_3", "mlx5_4", "mlx5_5", "mlx5_6", "mlx5_9", "mlx5_10", "mlx5_11"];
    assert.ok(c.topology);
    for (const g of c.topology.gpus) {
      assert.deepEqual(g.nearestHealthyNic, { device: rails[g.index], distance: "PIX" }, `GPU${g.index}`);
      assert.equal(g.gpuDirectRdma, true);
      for (const d of g.distances) {
        if (d.device === rails[g.index]) continue;
        const nicNuma = facts.nics.find((n) => n.name === d.device)?.numa;
        assert.equal(d.distance, nicNuma === facts.gpus[g.index]?.numa ? "NODE" : "SYS", `GPU${g.index}-${d.device}`);
      }
    }
  });
});

describe("the DGX A100 fixture", () => {
  const { sysfsRoot, procRoot } = COMMITTED_FIXTURES["dgx-a100"];

  it("has 8 HDR compute ports and 2 storage ports, all healthy against its expectations", async () => {
    const expectations = await loadExpectedFabric(EXPECT["dgx-a100"]);
    const c = collectFabric(undefined, { sysfsRoot, procRoot, clock: () => T0_MS, expectations }, gpusOf("dgx-a100"));
    assert.equal(c.health.status, "healthy", JSON.stringify(c.health.problems));
    assert.equal(c.health.ports.length, 10);
    assert.deepEqual(c.reading.devices[0]?.ports[0]?.rate, { rateGbps: 200, width: 4, speed: "HDR" });
  });

  it("GPU bus ids match the preset; GPU i is PIX to mlx5_i, PHB to its neighbour pair, NODE/SYS beyond", () => {
    const gpus = scanSysfsGpus(sysfsRoot);
    assert.deepEqual(
      gpus.map((g) => g.pciBusId),
      ["07", "0F", "47", "4E", "87", "90", "B7", "BD"].map((b) => `00000000:${b}:00.0`),
    );
    const c = collectFabric(undefined, { sysfsRoot, procRoot, clock: () => T0_MS }, gpus);
    const row = (i: number) => c.topology?.gpus[i]?.distances.map((d) => d.distance).join(" ");
    assert.equal(row(0), "PIX PHB NODE NODE SYS SYS SYS SYS SYS SYS");
    assert.equal(row(5), "SYS SYS SYS SYS PHB PIX NODE NODE NODE NODE");
    const nicAddresses = c.reading.devices.slice(0, 8).map((d) => d.pciAddress?.slice(5, 7));
    assert.deepEqual(nicAddresses, ["04", "0c", "44", "4b", "84", "8d", "b4", "ba"]);
  });
});

describe("fault variants", () => {
  const h100Expect = () => loadExpectedFabric(EXPECT["dgx-h100"]);

  it("covers every variant the generator defines", () => {
    assert.deepEqual(Object.keys(FAULTS).sort(), [...Object.keys(faultChecks)].sort());
  });

  const faultChecks: Record<FaultName, (t: { after: (fn: () => void) => void }) => Promise<void>> = {
    "link-down": async (t) => {
      const [, c] = runFault(tempDir(t), "link-down", { expectations: await h100Expect() });
      assert.ok(c);
      const p = portHealth(c, "mlx5_4/1");
      assert.equal(p.verdict, "down");
      assert.deepEqual(
        p.reasons.map((r) => r.code),
        ["state-not-active", "phys-state-not-linkup"],
      );
      assert.match(p.reasons[1]?.message ?? "", /Polling/);
      assert.equal(c.health.status, "critical");
      assert.equal(c.health.problems[0]?.code, "too-few-ports");
      // GPU 2 lost its rail: the next healthy compute NIC is across host bridges.
      const g2 = c.topology?.gpus[2];
      assert.equal(g2?.nearestHealthyNic?.distance, "NODE");
      assert.equal(g2?.gpuDirectRdma, false);
      assert.ok(g2?.flag);
      assert.deepEqual(
        c.topology?.gpus.filter((g) => g.flag).map((g) => g.index),
        [2],
      );
    },
    "width-downgrade": async (t) => {
      const [, c] = runFault(tempDir(t), "width-downgrade");
      assert.ok(c);
      const p = portHealth(c, "mlx5_5/1");
      assert.equal(p.verdict, "degraded");
      assert.deepEqual(
        p.reasons.map((r) => r.code),
        ["width-below-expected"],
      );
      assert.match(p.reasons[0]?.message ?? "", /link width 1X, its InfiniBand peers run at 4X/);
      assert.equal(c.health.status, "degraded");
      const [, withConfig] = runFault(tempDir(t), "width-downgrade", { expectations: await h100Expect() });
      assert.deepEqual(
        portHealth(withConfig as never, "mlx5_5/1").reasons.map((r) => r.code),
        ["width-below-expected", "rate-below-expected"],
      );
    },
    "speed-downgrade": async (t) => {
      const [, c] = runFault(tempDir(t), "speed-downgrade");
      assert.ok(c);
      const p = portHealth(c, "mlx5_6/1");
      assert.equal(p.verdict, "degraded");
      assert.deepEqual(
        p.reasons.map((r) => r.code),
        ["speed-below-expected"],
      );
      assert.match(p.reasons[0]?.message ?? "", /link speed HDR, its InfiniBand peers run at NDR/);
    },
    "symbol-error-storm": async (t) => {
      const [first, before, after] = runFault(tempDir(t), "symbol-error-storm");
      assert.equal(first?.health.status, "healthy");
      assert.equal(before?.health.status, "healthy");
      assert.ok(after);
      const p = portHealth(after, "mlx5_3/1");
      assert.equal(p.verdict, "degraded");
      const byCounter = p.reasons.map((r) => `${r.counter}:${r.severity}:${r.observed}`);
      // 6000 in 10 s = 600/s (limit 10/s) and 6000 within the hour (limit 120); 200 receive errors = 20/s.
      assert.deepEqual(byCounter, [
        "symbol_error:warning:600",
        "symbol_error:critical:6000",
        "port_rcv_errors:warning:20",
      ]);
      assert.equal(p.errorRatesPerSec.symbol_error, 600);
      assert.equal(after.health.status, "degraded");
      assert.equal(after.health.ports.filter((x) => x.verdict !== "healthy").length, 1);
    },
    flapping: async (t) => {
      const [, , after] = runFault(tempDir(t), "flapping");
      assert.ok(after);
      const p = portHealth(after, "mlx5_9/1");
      assert.equal(p.verdict, "flapping");
      assert.equal(p.downEvents, 3);
      assert.deepEqual(p.reasons.map((r) => r.code).sort(), ["flapping", "link-downed"]);
    },
    "missing-port": async (t) => {
      const [, c] = runFault(tempDir(t), "missing-port", { expectations: await h100Expect() });
      assert.ok(c);
      assert.ok(!c.health.ports.some((p) => p.device === "mlx5_10"));
      assert.equal(c.health.status, "critical");
      assert.deepEqual(
        c.health.problems.map((p) => [p.code, p.subject]),
        [
          ["expected-port-missing", "mlx5_10/1"],
          ["too-few-ports", "InfiniBand>=400Gb/s"],
        ],
      );
      const g6 = c.topology?.gpus[6];
      assert.equal(g6?.gpuDirectRdma, false);
      assert.equal(g6?.nearestHealthyNic?.distance, "NODE");
      // The uverbs/umad numbering shifts like the kernel's; every remaining device still has its own.
      assert.equal(new Set(c.reading.devices.map((d) => d.uverbs)).size, 11);
    },
    "counters-saturated": async (t) => {
      // Found saturated (no earlier sample), then read again unchanged: the
      // counters cannot show new errors, and that alone is the finding.
      const paths = writeHostFixture(tempDir(t), "dgx-h100", FAULTS["counters-saturated"].phases[0]);
      const options = { ...paths, clock: () => T0_MS };
      const first = collectFabric(undefined, options);
      const c = collectFabric(first.state, { ...options, clock: () => T0_MS + 60_000 });
      assert.equal(portHealth(first, "mlx5_0/1").verdict, "degraded");
      const p = portHealth(c, "mlx5_0/1");
      assert.ok(!p.reasons.some((r) => r.code === "error-rate" || r.code === "link-downed"));
      assert.equal(p.verdict, "degraded");
      const saturated = p.reasons.filter((r) => r.code === "counter-saturated").map((r) => r.counter);
      assert.deepEqual(saturated.sort(), [
        "excessive_buffer_overrun_errors",
        "link_downed",
        "link_error_recovery",
        "local_link_integrity_errors",
        "port_rcv_errors",
        "symbol_error",
      ]);
      assert.match(
        p.reasons.find((r) => r.counter === "symbol_error" && r.code === "counter-saturated")?.message ?? "",
        /saturated at 65535 \(16-bit\)/,
      );
    },
    "counter-reset": async (t) => {
      const [, before, after] = runFault(tempDir(t), "counter-reset");
      assert.equal(before?.health.status, "healthy");
      assert.ok(after);
      const p = portHealth(after, "mlx5_11/1");
      assert.equal(p.verdict, "healthy", JSON.stringify(p.reasons));
      assert.ok(p.notes.some((n) => /counters reset since the last sample/.test(n) && n.includes("port_xmit_data")));
      // The traffic since the clear is counted from zero, not as a huge negative or wrapped value.
      assert.ok((p.traffic?.xmitGbps ?? -1) >= 0 && (p.traffic?.xmitGbps ?? 1e9) < 400);
      assert.equal(after.health.status, "healthy");
    },
    reboot: async (t) => {
      const [, before, after] = runFault(tempDir(t), "reboot");
      assert.equal(before?.health.status, "healthy");
      assert.ok(after);
      assert.equal(after.health.status, "healthy");
      for (const p of after.health.ports) {
        assert.ok(!p.notes.some((n) => n.includes("counters reset")), `${p.key} mistook the reboot for a reset`);
        assert.ok(
          p.notes.some((n) => n.includes("rebooted")),
          p.key,
        );
        assert.equal(p.traffic, undefined);
      }
    },
    "a100-link-down": async (t) => {
      const [, c] = runFault(tempDir(t), "a100-link-down", {
        expectations: await loadExpectedFabric(EXPECT["dgx-a100"]),
      });
      assert.ok(c);
      assert.equal(portHealth(c, "mlx5_0/1").verdict, "down");
      const g0 = c.topology?.gpus[0];
      assert.deepEqual(g0?.nearestHealthyNic, { device: "mlx5_1", distance: "PHB" });
      assert.equal(g0?.gpuDirectRdma, false);
    },
  };

  for (const [name, check] of Object.entries(faultChecks)) {
    it(`${name}: ${FAULTS[name as FaultName].description}`, (t) => check(t));
  }
});

describe("committed fixture trees", () => {
  for (const model of ["dgx-h100", "dgx-a100"] as const) {
    it(`${model} is exactly what make-sysfs.ts generates`, (t) => {
      const dir = tempDir(t);
      const fresh = { sysfsRoot: join(dir, "sys"), procRoot: join(dir, "proc") };
      writeHostTrees(fresh, model);
      assert.deepEqual(snapshotTree(COMMITTED_FIXTURES[model].sysfsRoot), snapshotTree(fresh.sysfsRoot));
      assert.deepEqual(snapshotTree(COMMITTED_FIXTURES[model].procRoot), snapshotTree(fresh.procRoot));
    });
  }
});

/** path → file contents or `-> link target`, for comparing trees. */
function snapshotTree(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (rel: string) => {
    for (const name of readdirSync(join(root, rel)).sort()) {
      const path = rel ? `${rel}/${name}` : name;
      const st = lstatSync(join(root, path));
      if (st.isSymbolicLink()) out[path] = `-> ${readlinkSync(join(root, path))}`;
      else if (st.isDirectory()) walk(path);
      else out[path] = readFileSync(join(root, path), "latin1");
    }
  };
  walk("");
  return out;
}
