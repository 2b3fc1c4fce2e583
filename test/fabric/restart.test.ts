// Counter rates across a simulated agent restart (state only on disk) and
// across a simulated reboot (new boot id, counters restarted).
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { collectFabric, type FabricCollection } from "../../src/fabric/collect.js";
import { loadSnapshots, SNAPSHOT_FILE_NAME, saveSnapshots } from "../../src/fabric/snapshot-store.js";
import { type HostOverrides, healthyCounters, REBOOTED_BOOT_ID, writeHostFixture } from "../fixtures/make-sysfs.js";
import { portHealth, T0_MS, tempDir } from "./helpers.js";

/**
 * One run of a short-lived agent (or `tessera fabric`): whatever it knows
 * comes from the state dir, and it leaves its state there.
 */
async function agentRun(hostDir: string, stateDir: string, atMs: number, overrides: HostOverrides = {}) {
  const paths = writeHostFixture(hostDir, "dgx-h100", overrides);
  const loaded = await loadSnapshots(stateDir);
  const previous = loaded.status === "ok" ? loaded.state : undefined;
  const c = collectFabric(previous, { ...paths, clock: () => atMs });
  await saveSnapshots(stateDir, c.state, atMs);
  return { c, loaded };
}

const mlx5_0 = healthyCounters(0);

describe("rates across an agent restart", () => {
  it("computes rates from the snapshot the previous process left on disk", async (t) => {
    const host = tempDir(t);
    const state = tempDir(t);
    const first = await agentRun(host, state, T0_MS);
    assert.equal(first.loaded.status, "missing");
    assert.ok(portHealth(first.c, "mlx5_0/1").notes.some((n) => n.startsWith("first sample")));

    // 10 s later, a new process: 400 Gb/s of transmit and 50 symbol errors per second on mlx5_0.
    const { c, loaded } = await agentRun(host, state, T0_MS + 10_000, {
      ports: {
        "mlx5_0/1": { counterDeltas: { port_xmit_data: 125_000_000_000n, symbol_error: 500n } },
      },
    });
    assert.equal(loaded.status, "ok");
    const p = portHealth(c, "mlx5_0/1");
    assert.equal(p.traffic?.xmitGbps, 400);
    assert.equal(p.errorRatesPerSec.symbol_error, 50);
    assert.equal(p.verdict, "degraded");
    assert.deepEqual(
      p.reasons.map((r) => `${r.counter}:${r.observed}`),
      ["symbol_error:50", "symbol_error:500"],
    );
    assert.ok(!p.notes.some((n) => n.startsWith("first sample")));
  });

  it("keeps windowed history across restarts: three link-downs in three runs is flapping", async (t) => {
    const host = tempDir(t);
    const state = tempDir(t);
    const verdicts: string[] = [];
    for (let run = 0; run < 4; run++) {
      const { c } = await agentRun(host, state, T0_MS + run * 3_600_000, {
        ports: { "mlx5_0/1": { counters: { link_downed: (mlx5_0.link_downed ?? 0n) + BigInt(run) } } },
      });
      verdicts.push(portHealth(c, "mlx5_0/1").verdict);
    }
    // Each link-down is degraded on its own (link-downed); the third within 12 h is flapping.
    assert.deepEqual(verdicts, ["healthy", "degraded", "degraded", "flapping"]);
  });

  it("ignores a corrupt snapshot, says so, and starts over", async (t) => {
    const host = tempDir(t);
    const state = tempDir(t);
    await agentRun(host, state, T0_MS);
    writeFileSync(join(state, SNAPSHOT_FILE_NAME), "tessera-fabric-snapshots 1 sha256=00\n{}\n");
    const { c, loaded } = await agentRun(host, state, T0_MS + 1000);
    assert.equal(loaded.status, "corrupt");
    assert.ok(portHealth(c, "mlx5_0/1").notes.some((n) => n.startsWith("first sample")));
    assert.equal((await loadSnapshots(state)).status, "ok", "the next save repairs it");
  });

  it("does not reuse history recorded for another sysfs root", async (t) => {
    const state = tempDir(t);
    await agentRun(tempDir(t), state, T0_MS);
    const { c } = await agentRun(tempDir(t), state, T0_MS + 1000);
    assert.ok(portHealth(c, "mlx5_0/1").notes.some((n) => n.startsWith("first sample")));
  });
});

describe("rates across a reboot", () => {
  it("re-baselines on the new boot id instead of reporting resets, then rates resume", async (t) => {
    const host = tempDir(t);
    const state = tempDir(t);
    await agentRun(host, state, T0_MS, {
      ports: { "mlx5_0/1": { counterDeltas: { symbol_error: 40_000n } } },
    });
    const rebooted: HostOverrides = {
      bootId: REBOOTED_BOOT_ID,
      ports: { "mlx5_0/1": { counters: { port_xmit_data: 0n, symbol_error: 0n, link_downed: 1n } } },
    };
    const afterBoot: FabricCollection = (await agentRun(host, state, T0_MS + 600_000, rebooted)).c;
    const p = portHealth(afterBoot, "mlx5_0/1");
    assert.equal(p.verdict, "healthy", JSON.stringify(p.reasons));
    assert.ok(p.notes.some((n) => n.includes("rebooted")));
    assert.ok(!p.notes.some((n) => n.includes("counters reset")));
    assert.equal(afterBoot.bootId, REBOOTED_BOOT_ID);

    const next = (
      await agentRun(host, state, T0_MS + 610_000, {
        bootId: REBOOTED_BOOT_ID,
        ports: { "mlx5_0/1": { counters: { port_xmit_data: 12_500_000_000n, symbol_error: 0n, link_downed: 1n } } },
      })
    ).c;
    assert.equal(portHealth(next, "mlx5_0/1").traffic?.xmitGbps, 40);
  });

  it("the same drop without a reboot is a reset, noted and not mistaken for errors", async (t) => {
    const host = tempDir(t);
    const state = tempDir(t);
    await agentRun(host, state, T0_MS);
    const { c } = await agentRun(host, state, T0_MS + 600_000, {
      ports: { "mlx5_0/1": { counters: { port_xmit_data: 0n, symbol_error: 0n, link_downed: 0n } } },
    });
    const p = portHealth(c, "mlx5_0/1");
    assert.equal(p.verdict, "healthy", JSON.stringify(p.reasons));
    assert.ok(p.notes.some((n) => n.includes("counters reset") && n.includes("link_downed")));
  });
});
