// `tessera fabric`: table and JSON output, exit codes, --expect errors,
// snapshots in --state-dir.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { Command } from "commander";
import { EXIT_NOT_EVALUATED, type FabricCommandOptions, fabricCommand, runFabric } from "../../src/cli/fabric.js";
import { COMMITTED_FIXTURES, FAULTS, writeHostFixture } from "../fixtures/make-sysfs.js";
import { T0_MS, tempDir } from "./helpers.js";

const H100 = COMMITTED_FIXTURES["dgx-h100"];
const EXPECT_H100 = join(import.meta.dirname, "..", "fixtures", "fabric", "expect-dgx-h100.yaml");

function options(over: Partial<FabricCommandOptions>): FabricCommandOptions {
  return {
    sysfsRoot: H100.sysfsRoot,
    procRoot: H100.procRoot,
    output: "table",
    stateDir: "/nonexistent",
    state: false,
    ...over,
  };
}

/** Runs `tessera fabric …` through commander, capturing stdout, stderr and the exit status. */
async function cli(args: string[]): Promise<{ stdout: string; stderr: string; exitCode: number }> {
  let stdout = "";
  let stderr = "";
  const command = fabricCommand({
    clock: () => T0_MS,
    stdout: (text) => {
      stdout += text;
    },
    stderr: (text) => {
      stderr += text;
    },
  });
  // Commander writes help and usage errors itself.
  command.configureOutput({
    writeOut: (text) => {
      stdout += text;
    },
    writeErr: (text) => {
      stderr += text;
    },
  });
  const program = new Command("tessera").exitOverride();
  program.addCommand(command);
  const saved = process.exitCode;
  process.exitCode = undefined;
  try {
    await program.parseAsync(["fabric", ...args], { from: "user" });
    return { stdout, stderr, exitCode: typeof process.exitCode === "number" ? process.exitCode : 0 };
  } catch (e) {
    return { stdout, stderr, exitCode: (e as { exitCode?: number }).exitCode ?? -1 };
  } finally {
    // The runner's own exit status must not inherit the command's.
    process.exitCode = saved;
  }
}

describe("tessera fabric", () => {
  it("prints an ibstat-like port table and a GPU × NIC matrix for a healthy host", async () => {
    const { output, exitCode } = await runFabric(options({}));
    assert.equal(exitCode, 0);
    const lines = output.split("\n");
    assert.match(lines[0] ?? "", /^Fabric: HEALTHY \(12 ports: 12 healthy\)/);
    assert.match(output, /^DEVICE\s+PORT\s+LINK LAYER\s+STATE\s+PHYSICAL STATE\s+RATE\s+LID\s+SM LID/m);
    assert.match(
      output,
      /^mlx5_0\s+1\s+InfiniBand\s+Active\s+LinkUp\s+400 Gb\/sec \(4X NDR\)\s+28\s+1\s+ibp24s0\s+0\s+0000:18:00\.0\s+-\s+-\s+healthy\s+-$/m,
    );
    assert.match(
      output,
      /^mlx5_7\s+1\s+Ethernet\s+Active\s+LinkUp\s+200 Gb\/sec \(2X NDR\)\s+-\s+-\s+enp170s0f0np0\s/m,
    );
    assert.match(output, /^\s+NIC0\s+NIC1\s+.*NIC11\s+NUMA\s+NEAREST HEALTHY NIC\s+GPUDirect RDMA$/m);
    assert.match(
      output,
      /^GPU0\s+PIX\s+NODE\s+NODE\s+NODE\s+NODE\s+NODE\s+SYS\s+SYS\s+SYS\s+SYS\s+SYS\s+SYS\s+0\s+NIC0 \(mlx5_0\) PIX\s+yes$/m,
    );
    assert.match(output, /^GPU7\s+SYS\s+.*PIX\s+1\s+NIC11 \(mlx5_11\) PIX\s+yes$/m);
    assert.match(output, /^ {2}NIC11: mlx5_11$/m);
    assert.match(output, /counter rates skipped \(--no-state\)/);
    assert.doesNotMatch(output, /first sample/);
    assert.doesNotMatch(output, /Flagged GPUs/);
  });

  it("emits JSON with ports, problems and topology", async () => {
    const { output, exitCode } = await runFabric(options({ output: "json", expect: EXPECT_H100 }));
    assert.equal(exitCode, 0);
    const json = JSON.parse(output);
    assert.equal(json.status, "healthy");
    assert.equal(json.exitCode, 0);
    assert.equal(json.bootId, "3e2f1b5c-8a4d-4f6e-9b7a-1c2d3e4f5a6b");
    assert.equal(json.ports.length, 12);
    const p0 = json.ports.find((p: { key: string }) => p.key === "mlx5_0/1");
    assert.deepEqual(
      [p0.verdict, p0.role, p0.state.name, p0.lid, p0.pciAddress, p0.rate.rateGbps],
      ["healthy", "compute", "ACTIVE", 28, "0000:18:00.0", 400],
    );
    assert.equal(json.topology.gpus[3].nearestHealthyNic.device, "mlx5_5");
    assert.equal(json.topology.nics.find((n: { device: string }) => n.device === "mlx5_1").candidate, false);
  });

  const exits: [string, keyof typeof FAULTS, string | undefined, number, RegExp][] = [
    [
      "a down port exits 2 and flags the GPU that lost its rail",
      "link-down",
      EXPECT_H100,
      2,
      /GPU2 \(00000000:52:00\.0\): nearest healthy NIC mlx5_\d+ is NODE/,
    ],
    [
      "a degraded port exits 1",
      "width-downgrade",
      undefined,
      1,
      /mlx5_5\s+1\s+InfiniBand\s+Active\s+LinkUp\s+100 Gb\/sec \(1X NDR\).*degraded\s+link width 1X/,
    ],
    [
      "too few ports at the expected rate exits 2",
      "width-downgrade",
      EXPECT_H100,
      2,
      /critical: only 7 InfiniBand port\(s\) are active at >= 400 Gb\/s; expected at least 8/,
    ],
    [
      "a missing expected port exits 2",
      "missing-port",
      EXPECT_H100,
      2,
      /critical: expected port mlx5_10\/1 is missing/,
    ],
  ];
  for (const [name, fault, expect, code, pattern] of exits) {
    it(name, async (t) => {
      const paths = writeHostFixture(tempDir(t), FAULTS[fault].model, FAULTS[fault].phases[0]);
      const { output, exitCode } = await runFabric(options({ ...paths, expect }));
      assert.equal(exitCode, code);
      assert.match(output, pattern);
    });
  }

  it("keeps counter snapshots in --state-dir, so the second run has rates", async (t) => {
    const host = tempDir(t);
    const stateDir = join(tempDir(t), "state");
    let now = T0_MS;
    const deps = { clock: () => now };
    writeHostFixture(host, "dgx-h100");
    const first = await runFabric(
      options({ sysfsRoot: join(host, "sys"), procRoot: join(host, "proc"), stateDir, state: true }),
      deps,
    );
    assert.match(first.output, /first sample: counter rates start with the next read \(all ports\)/);
    now += 10_000;
    writeHostFixture(host, "dgx-h100", FAULTS["symbol-error-storm"].phases[1]);
    const second = await runFabric(
      options({ sysfsRoot: join(host, "sys"), procRoot: join(host, "proc"), stateDir, state: true }),
      deps,
    );
    assert.equal(second.exitCode, 1);
    assert.match(second.output, /mlx5_3\s+1\s.*degraded\s+symbol_error 600 per 1 s \(limit 10\)/);
    assert.doesNotMatch(second.output, /first sample/);
  });

  it("skips rates with a note when the state dir is not writable", async (t) => {
    const file = join(tempDir(t), "not-a-dir");
    writeFileSync(file, "");
    const { output, exitCode } = await runFabric(options({ stateDir: join(file, "state"), state: true }));
    assert.equal(exitCode, 0);
    assert.match(
      output,
      /counter rates skipped: state dir .*not-a-dir\/state is not writable \(ENOTDIR\); pass --state-dir/,
    );
  });
});

describe("tessera fabric (command line)", () => {
  it("runs through the real entry point and exits with the fabric status", (t) => {
    const paths = writeHostFixture(tempDir(t), "dgx-h100", FAULTS["link-down"].phases[0]);
    const r = spawnSync(
      process.execPath,
      [
        "--import",
        "tsx",
        "src/cli/main.ts",
        "fabric",
        "--sysfs-root",
        paths.sysfsRoot,
        "--proc-root",
        paths.procRoot,
        "--no-state",
      ],
      { cwd: join(import.meta.dirname, "..", ".."), encoding: "utf8", timeout: 60_000 },
    );
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stdout, /^Fabric: CRITICAL/);
  });

  it("parses its flags and sets the exit status", async (t) => {
    const paths = writeHostFixture(tempDir(t), "dgx-h100", FAULTS["link-down"].phases[0]);
    const r = await cli(["--sysfs-root", paths.sysfsRoot, "--proc-root", paths.procRoot, "-o", "json", "--no-state"]);
    assert.equal(r.exitCode, 2);
    assert.equal(JSON.parse(r.stdout).status, "critical");
  });

  it("exits 3 with file, line and field for an invalid --expect file", async (t) => {
    const bad = join(tempDir(t), "expect.yaml");
    writeFileSync(bad, "version: 1\nports:\n  - device: mlx5_0\n    minRateGbps: fast\n");
    const r = await cli(["--sysfs-root", H100.sysfsRoot, "--no-state", "--expect", bad]);
    assert.equal(r.exitCode, EXIT_NOT_EVALUATED);
    assert.equal(r.stdout, "");
    assert.match(
      r.stderr,
      new RegExp(`^tessera fabric: ${bad}:4:18: ports\\[0\\]\\.minRateGbps: .*\\[TESSERA_INVALID_INPUT\\]\\n$`),
    );
  });

  it("exits 3 when --sysfs-root is not a sysfs tree", async (t) => {
    const r = await cli(["--sysfs-root", join(tempDir(t), "nothing"), "--no-state"]);
    assert.equal(r.exitCode, EXIT_NOT_EVALUATED);
    assert.match(r.stderr, /does not look like a sysfs root \(no class\/ directory\) \[TESSERA_SYSFS_ROOT\]/);
  });

  it("exits 3 for an invalid --output", async () => {
    const r = await cli(["-o", "yaml", "--no-state"]);
    assert.equal(r.exitCode, EXIT_NOT_EVALUATED);
    assert.match(r.stderr, /expected "table" or "json", got "yaml"/);
  });

  it("documents the exit codes in --help", async () => {
    const r = await cli(["--help"]);
    assert.equal(r.exitCode, 0);
    assert.match(r.stdout, /--sysfs-root <dir>/);
    assert.match(
      r.stdout,
      /Exit status:\n {2}0 {2}every port healthy[\s\S]*1 {2}a port is degraded or flapping[\s\S]*2 {2}a port is down/,
    );
  });
});
