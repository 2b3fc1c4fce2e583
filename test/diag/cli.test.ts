// `tessera diag`: the checklist, -o json, and the exit status scripts rely on (0 pass, 1 warn,
// 2 fail, 3 could not run). Runs the real command, probe host included.
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, beforeEach, describe, it } from "node:test";
import type { DiagnosticsReport } from "../../src/diag/types.js";
import { runCli } from "../cli/run-cli.js";
import { COMMITTED_FIXTURES } from "../fixtures/make-sysfs.js";
import { createSimWorld, type SimWorld } from "../nvml/sim-world.js";
import { DIAG_FIXTURES } from "./helpers.js";

let world: SimWorld;
before(() => {
  world = createSimWorld("dgx-h100");
});
after(() => world?.dispose());
beforeEach(() => world.reset("dgx-h100"));

const H100 = COMMITTED_FIXTURES["dgx-h100"];
const EXPECT_H100 = join(import.meta.dirname, "..", "fixtures", "fabric", "expect-dgx-h100.yaml");
/** A healthy DGX H100 as far as every source goes, with no lease checkpoint. */
const HOST = [
  "diag",
  "--sim",
  "--sysfs-root",
  H100.sysfsRoot,
  "--proc-root",
  H100.procRoot,
  "--fabric-expect",
  EXPECT_H100,
  "--leases",
  "/nonexistent/leases.json",
  "--expect-gpus",
  "8",
];

describe("tessera diag", () => {
  it("exits 0 with a passing checklist on a healthy host", async () => {
    const r = await runCli([...HOST, "--kernel-log", "/dev/null"]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(
      r.stdout,
      /^PASS: this node is fit to run work\n\(14 checks, quick: 13 pass, 0 warn, 0 fail, 1 skip; /,
    );
    assert.match(r.stdout, /\n\[PASS\] gpu\.reachable +Every GPU is reachable \(none lost\)\n +8 of 8 GPUs answer\n/);
    assert.match(r.stdout, /\n\[SKIP\] mig\.leases +.*\n +no lease checkpoint at \/nonexistent\/leases\.json/);
  });

  it("exits 1 on warnings and says what to do", async () => {
    const r = await runCli([
      ...HOST,
      "--kernel-log",
      join(DIAG_FIXTURES, "journal-row-remap.log"),
      "--xid-lookback",
      "100000h",
    ]);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stdout, /^WARN: this node can run work/);
    assert.match(
      r.stdout,
      /\n\[WARN\] gpu\.xid .*\n +GPU 5 \(00000000:C3:00\.0\): XID 63 .*\n +fix: XID 63 .*reset the GPU at its next idle moment/,
    );
  });

  it("exits 2 on failures, and -o json carries every result for automation", async () => {
    world.sim.setLost(3, true);
    const r = await runCli([...HOST, "--kernel-log", "none", "-o", "json"]);
    assert.equal(r.code, 2, r.stdout + r.stderr);
    const report = JSON.parse(r.stdout) as DiagnosticsReport;
    assert.equal(report.summary.exitCode, 2);
    assert.equal(report.level, "quick");
    const reachable = report.results.find((x) => x.id === "gpu.reachable");
    assert.equal(reachable?.status, "fail");
    assert.match(
      reachable?.evidence[0] ?? "",
      /^GPU 3: lost \(nvmlDeviceGetHandleByIndex_v2 answered NVML_ERROR_GPU_IS_LOST\)$/,
    );
    assert.match(reachable?.remediation ?? "", /drain the node and reboot/);
    assert.deepEqual(Object.keys(reachable ?? {}).sort(), [
      "durationMs",
      "evidence",
      "id",
      "level",
      "remediation",
      "status",
      "timedOut",
      "title",
    ]);
  });

  const bad: [string, string[], RegExp][] = [
    ["an unknown level", ["--level", "deep"], /--level: expected quick or standard, got "deep"/],
    ["a malformed window", ["--level", "standard", "--window", "soon"], /--window: expected a duration/],
    ["a GPU count that is not a number", ["--expect-gpus", "eight"], /--expect-gpus: expected a positive whole number/],
    ["an unknown output format", ["-o", "yaml"], /-o\/--output: expected "table" or "json"/],
    ["a missing fabric expectation file", ["--fabric-expect", "/nonexistent/expect.yaml"], /nonexistent\/expect\.yaml/],
    ["a check that does not exist", ["--check", "gpu.nonsense"], /--check gpu\.nonsense: no such check/],
    ["an unknown flag", ["--bogus"], /unknown option '--bogus'/],
  ];
  for (const [name, args, message] of bad) {
    it(`exits 3 on ${name}`, async () => {
      const r = await runCli(["diag", "--sim", "--kernel-log", "none", ...args]);
      assert.equal(r.code, 3, r.stdout + r.stderr);
      assert.match(r.stderr, message);
      assert.equal(r.stdout, "");
    });
  }

  it("documents its exit status in --help", async () => {
    const r = await runCli(["diag", "--help"]);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /2 {2}at least one check failed: the node is not fit to run work/);
  });
});
