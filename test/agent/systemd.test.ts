import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { defaultAgentConfig } from "../../src/agent/config.js";
import { removeDir } from "./harness.js";

const ROOT = join(import.meta.dirname, "..", "..");
const UNIT = join(ROOT, "systemd/tessera-agent.service");
const SYSUSERS = join(ROOT, "systemd/tessera.sysusers");
const TMPFILES = join(ROOT, "systemd/tessera.tmpfiles");

function has(cmd: string): boolean {
  return spawnSync("sh", ["-c", `command -v ${cmd}`]).status === 0;
}

/**
 * systemd-analyze comes with Debian's systemd package. When it is missing, install it the way the
 * project's CI machines can (root, apt); the reason to skip is given only when that is impossible.
 */
function ensureSystemdTools(): string | undefined {
  if (has("systemd-analyze") && has("systemd-sysusers") && has("systemd-tmpfiles")) return undefined;
  if (process.getuid?.() !== 0) return "systemd-analyze is missing and installing Debian's systemd package needs root";
  if (!has("apt-get"))
    return "systemd-analyze is missing and this host has no apt-get to install Debian's systemd package";
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  const update = spawnSync("apt-get", ["update"], { env, stdio: "ignore" });
  const install = spawnSync("apt-get", ["install", "-y", "--no-install-recommends", "systemd"], {
    env,
    stdio: "ignore",
  });
  if (update.status !== 0 || install.status !== 0 || !has("systemd-analyze"))
    return "systemd-analyze is missing and `apt-get install systemd` failed";
  return undefined;
}

function directives(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const line of text.split("\n")) {
    const m = /^([A-Za-z]+)=(.*)$/.exec(line.trim());
    if (!m) continue;
    out.set(m[1] as string, [...(out.get(m[1] as string) ?? []), m[2] as string]);
  }
  return out;
}

let skip: string | undefined;
let dir: string;

before(() => {
  skip = ensureSystemdTools();
  dir = mkdtempSync(join(tmpdir(), "tessera-systemd-"));
});

after(() => removeDir(dir));

describe("systemd integration", () => {
  it("passes systemd-analyze verify", (t) => {
    if (skip) return t.skip(skip);
    // verify insists that ExecStart's binary exists: point it at a stand-in, change nothing else.
    const stub = join(dir, "tessera-agent");
    writeFileSync(stub, "#!/bin/sh\nexit 0\n");
    chmodSync(stub, 0o755);
    const unit = join(dir, "tessera-agent.service");
    const text = readFileSync(UNIT, "utf8");
    assert.match(text, /^ExecStart=\/usr\/bin\/tessera-agent /m);
    writeFileSync(unit, text.replace("ExecStart=/usr/bin/tessera-agent", `ExecStart=${stub}`));
    const r = spawnSync("systemd-analyze", ["verify", unit], { encoding: "utf8" });
    assert.equal(r.status, 0, `systemd-analyze verify:\n${r.stdout}${r.stderr}`);
    assert.equal(r.stderr.trim(), "", "no warnings");
  });

  it("sandboxes the agent: read-only system, its own writable directories, one capability, no new privileges", () => {
    const d = directives(readFileSync(UNIT, "utf8"));
    const one = (k: string) => d.get(k)?.at(-1);
    assert.equal(one("User"), "tessera");
    assert.equal(one("ProtectSystem"), "strict");
    assert.equal(one("NoNewPrivileges"), "yes");
    assert.equal(one("CapabilityBoundingSet"), "CAP_SYS_ADMIN");
    assert.equal(one("AmbientCapabilities"), "CAP_SYS_ADMIN");
    assert.equal(one("StateDirectory"), "tessera");
    assert.equal(one("RuntimeDirectory"), "tessera");
    assert.equal(one("ExecReload"), "/bin/kill -HUP $MAINPID");
    // The defaults agree with the unit's directories, and systemd waits longer than the agent's grace.
    const config = defaultAgentConfig();
    assert.equal(config.state.dir, "/var/lib/tessera");
    assert.equal(config.listen.socket, "/run/tessera/agent.sock");
    assert.ok(
      Number.parseInt(one("TimeoutStopSec") ?? "0", 10) * 1000 > config.shutdown.graceMs,
      "TimeoutStopSec > grace",
    );
  });

  it("creates the tessera user and group, and the config and state directories", (t) => {
    if (skip) return t.skip(skip);
    const root = join(dir, "root");
    mkdirSync(join(root, "etc"), { recursive: true });
    execFileSync("systemd-sysusers", [`--root=${root}`, SYSUSERS], { stdio: "ignore" });
    const passwd = readFileSync(join(root, "etc/passwd"), "utf8");
    const user = /^tessera:x:(\d+):(\d+):[^:]*:\/var\/lib\/tessera:/m.exec(passwd);
    assert.ok(user, `a tessera user in\n${passwd}`);
    assert.match(readFileSync(join(root, "etc/group"), "utf8"), new RegExp(`^tessera:x:${user[2]}:`, "m"));
    execFileSync("systemd-tmpfiles", [`--root=${root}`, "--create", TMPFILES], { stdio: "ignore" });
    const state = statSync(join(root, "var/lib/tessera"));
    assert.equal(state.mode & 0o777, 0o750);
    assert.equal(state.uid, Number(user[1]));
    assert.equal(statSync(join(root, "etc/tessera/tls")).mode & 0o777, 0o750);
  });
});
