import assert from "node:assert/strict";
import { mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import pino from "pino";
import { groupId, permissionOf, prepareSocketPath, secureSocket } from "../../src/agent/servers.js";

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), "tessera-servers-"));
});
after(() => rmSync(dir, { recursive: true, force: true }));

function listen(path: string): Promise<Server> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(path, () => resolve(s));
  });
}

describe("listeners", () => {
  it("names what each method needs", () => {
    assert.equal(permissionOf("/tessera.v1.NodeAgentService/GetNode"), "read");
    assert.equal(permissionOf("/tessera.v1.NodeAgentService/WatchNode"), "read");
    assert.equal(permissionOf("/tessera.v1.NodeAgentService/Allocate"), "leases");
    assert.equal(permissionOf("/tessera.v1.NodeAgentService/Release"), "leases");
    assert.equal(permissionOf("/tessera.v1.NodeAgentService/ApplyMigLayout"), "mig");
    assert.equal(permissionOf("/tessera.v1.NodeAgentService/RunDiagnostics"), "diagnostics");
    assert.equal(permissionOf("/grpc.health.v1.Health/Check"), "authenticated");
    assert.equal(permissionOf("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"), "read");
  });

  it("replaces a stale socket, but never a file that is not one", async () => {
    // A socket file left behind by an agent that died (here: one still bound, which is the same to bind()).
    const stale = join(dir, "stale.sock");
    const old = await listen(stale);
    await prepareSocketPath(stale);
    const fresh = await listen(stale);
    old.close();
    fresh.close();
    writeFileSync(join(dir, "regular"), "keep me");
    await assert.rejects(prepareSocketPath(join(dir, "regular")), /exists and is not a socket/);
  });

  it("gives the socket its mode, and its group where the group exists", async () => {
    const path = join(dir, "agent.sock");
    await prepareSocketPath(path);
    const server = await listen(path);
    const lines: string[] = [];
    const log = pino({ level: "info" }, { write: (l: string) => lines.push(l) });
    try {
      await secureSocket(path, "0660", "no-such-group-here", log);
      assert.equal(statSync(path).mode & 0o777, 0o660);
      assert.match(lines.join(""), /socket group does not exist/);
    } finally {
      server.close();
    }
    const groups = join(dir, "group");
    writeFileSync(groups, "root:x:0:\ntessera:x:987:alice,bob\n");
    assert.equal(await groupId("tessera", groups), 987);
    assert.equal(await groupId("nope", groups), undefined);
  });
});
