import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { fold } from "../../src/diag/findings.js";
import { renderReport } from "../../src/diag/report.js";
import { type CheckResult, type CheckStatus, type DiagnosticsReport, summarize } from "../../src/diag/types.js";

const check = (id: string, status: CheckStatus, over: Partial<CheckResult> = {}): CheckResult => ({
  id,
  title: `title of ${id}`,
  level: "quick",
  status,
  evidence: [`${id} evidence 1`, `${id} evidence 2`],
  remediation: status === "pass" || status === "skip" ? "" : `fix ${id}\nthen check ${id} again`,
  durationMs: 3,
  timedOut: false,
  ...over,
});

const report = (results: CheckResult[]): DiagnosticsReport => ({
  level: "quick",
  windowMs: 0,
  startedAtMs: 0,
  durationMs: 1234,
  results,
  summary: summarize(results),
});

describe("summarize", () => {
  const cases: [CheckStatus[], 0 | 1 | 2][] = [
    [[], 0],
    [["pass", "skip"], 0],
    [["pass", "warn", "skip"], 1],
    [["warn", "fail"], 2],
  ];
  for (const [statuses, exitCode] of cases) {
    it(`exits ${exitCode} for [${statuses.join(", ")}]`, () => {
      assert.equal(summarize(statuses.map((s, i) => check(`c.${i}`, s))).exitCode, exitCode);
    });
  }
});

describe("renderReport", () => {
  it("heads the checklist with the verdict and shows problems in full, with what to do", () => {
    const text = renderReport(
      report([check("gpu.ecc", "pass"), check("gpu.xid", "fail", { timedOut: true }), check("mig.leases", "skip")]),
    );
    assert.equal(
      text,
      [
        "FAIL: this node is not fit to run work; fix the failures below",
        "(3 checks, quick: 1 pass, 0 warn, 1 fail, 1 skip; 1.2 s)",
        "",
        "[PASS] gpu.ecc     title of gpu.ecc",
        "       gpu.ecc evidence 1",
        "       (1 more; --verbose shows them)",
        "[FAIL] gpu.xid     title of gpu.xid  (timed out)",
        "       gpu.xid evidence 1",
        "       gpu.xid evidence 2",
        "       fix: fix gpu.xid",
        "            then check gpu.xid again",
        "[SKIP] mig.leases  title of mig.leases",
        "       mig.leases evidence 1",
        "       (1 more; --verbose shows them)",
      ].join("\n"),
    );
  });

  it("shows every line with --verbose, and says so when the node is fit", () => {
    const text = renderReport(report([check("gpu.ecc", "pass")]), { verbose: true });
    assert.match(text, /^PASS: this node is fit to run work\n/);
    assert.match(text, /gpu\.ecc evidence 2$/);
  });
});

describe("fold", () => {
  it("leads with the summary when all pass, counts the passes next to problems, and says each fix once", () => {
    const allPass = fold(
      [
        { status: "pass", text: "a" },
        { status: "pass", text: "b" },
      ],
      { passSummary: "all fine" },
    );
    assert.deepEqual(allPass, { status: "pass", evidence: ["all fine", "a", "b"], remediation: "" });
    const mixed = fold(
      [
        { status: "pass", text: "a" },
        { status: "warn", text: "w1", remediation: "do x" },
        { status: "warn", text: "w2", remediation: "do x" },
        { status: "pass", text: "b" },
        { status: "skip", text: "s" },
      ],
      { passSummary: "all fine" },
    );
    assert.deepEqual(mixed, { status: "warn", evidence: ["w1", "w2", "2 others fine", "s"], remediation: "do x" });
    assert.equal(fold([]).status, "skip");
  });
});
