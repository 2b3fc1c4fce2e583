import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, beforeEach, describe, it } from "node:test";
import { createSimWorld, type SimWorld } from "../nvml/sim-world.js";
import { runCli } from "./run-cli.js";

let world: SimWorld;
let dir: string;
before(() => {
  world = createSimWorld("dgx-h100");
});
after(() => world?.dispose());
beforeEach(() => {
  world.reset("dgx-h100");
  dir = mkdtempSync(join(tmpdir(), "tessera-mig-cli-"));
});

function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

const BALANCED = `version: v1
mig-configs:
  balanced:
    - devices: [0]
      mig-enabled: true
      mig-devices:
        "3g.40gb": 1
        "2g.20gb": 1
        "1g.10gb": 2
  too-big:
    - devices: [0]
      mig-enabled: true
      mig-devices:
        "4g.40gb": 1
        "3g.40gb": 2
`;

describe("tessera mig", () => {
  it("plans, applies and shows a layout, then exports it", async () => {
    const spec = file("spec.yaml", BALANCED);
    const state = ["--state-dir", join(dir, "state")];
    const apply = await runCli(["mig", "apply", "--sim", ...state, "-f", spec, "-c", "balanced"]);
    assert.equal(apply.code, 0, apply.stderr);
    assert.match(apply.stdout, /0 +applied +kept 0, destroyed 0, created 4/);
    const show = await runCli(["mig", "show", "--sim", ...state]);
    assert.match(show.stdout, /0 +NVIDIA H100 80GB HBM3 +enabled +\[2g\.20\|1g\|1g\|3g\.40gb +\] +4/);
    const plan = await runCli(["mig", "plan", "--sim", ...state, "-f", spec, "-c", "balanced", "-o", "json"]);
    const parsed = JSON.parse(plan.stdout) as { plan: { gpus: { changed: boolean }[] } };
    assert.equal(parsed.plan.gpus[0]?.changed, false, "already applied");
    const exported = await runCli(["mig", "export", "--sim", ...state]);
    assert.match(exported.stdout, /current:\n {4}- devices:\n {8}- 0\n {6}mig-enabled: true\n {6}mig-devices:\n/);
  });

  it("exits 2 on an infeasible plan and says why", async () => {
    const spec = file("spec.yaml", BALANCED);
    const state = ["--state-dir", join(dir, "state")];
    await runCli(["mig", "apply", "--sim", ...state, "-f", spec, "-c", "balanced"]);
    const r = await runCli(["mig", "plan", "--sim", ...state, "-f", spec, "-c", "too-big"]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stdout, /GPU 0.*(cannot|infeasible|does not fit|no room)/is);
  });

  it("rejects an invalid spec with file, line and the valid profiles", async () => {
    const spec = file(
      "bad.yaml",
      `version: v1\nmig-configs:\n  x:\n    - devices: [0]\n      mig-enabled: true\n      mig-devices:\n        "1g.10gb": 1\n`,
    );
    const state = ["--state-dir", join(dir, "state")];
    await runCli(["mig", "apply", "--sim", ...state, "-f", spec]);
    const bad = file(
      "bad2.yaml",
      `version: v1\nmig-configs:\n  x:\n    - devices: [0]\n      mig-enabled: true\n      mig-devices:\n        "5g.50gb": 1\n`,
    );
    const r = await runCli(["mig", "plan", "--sim", ...state, "-f", bad]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /bad2\.yaml:7:\d+: .*5g\.50gb.*1g\.10gb/s);
  });
});

after(() => rmSync(dir, { recursive: true, force: true }));
