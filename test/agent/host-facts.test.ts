import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { gatherHostFacts, parseCpuInfo, parseOsRelease } from "../../src/agent/host-facts.js";

const TWO_SOCKETS = ["0", "1"]
  .flatMap((socket) =>
    [0, 1].flatMap((core) =>
      [0, 1].map(
        (thread) =>
          `processor\t: ${Number(socket) * 4 + core * 2 + thread}\nmodel name\t: Intel(R) Xeon(R) Platinum 8480C\nphysical id\t: ${socket}\ncore id\t\t: ${core}\n`,
      ),
    ),
  )
  .join("\n");

describe("host facts", () => {
  it("reads the distribution's pretty name", () => {
    assert.equal(
      parseOsRelease('NAME="Ubuntu"\nVERSION="22.04.4 LTS (Jammy Jellyfish)"\nPRETTY_NAME="Ubuntu 22.04.4 LTS"\n'),
      "Ubuntu 22.04.4 LTS",
    );
    assert.equal(parseOsRelease("NAME=Debian\nVERSION='12 (bookworm)'\n"), "Debian 12 (bookworm)");
    assert.equal(parseOsRelease("# nothing\n"), undefined);
  });

  it("counts sockets and physical cores, not hyperthreads", () => {
    assert.deepEqual(parseCpuInfo(TWO_SOCKETS), { model: "Intel(R) Xeon(R) Platinum 8480C", sockets: 2, cores: 4 });
    // arm64 kernels list processors without topology: one socket, every processor a core.
    assert.deepEqual(parseCpuInfo("processor\t: 0\nBogoMIPS\t: 50.00\n\nprocessor\t: 1\nBogoMIPS\t: 50.00\n"), {
      model: undefined,
      sockets: 1,
      cores: 2,
    });
  });

  it("gathers them from a root, falling back to node:os for what is missing", async () => {
    const root = mkdtempSync(join(tmpdir(), "tessera-host-"));
    try {
      mkdirSync(join(root, "etc"));
      mkdirSync(join(root, "proc"));
      writeFileSync(join(root, "etc/os-release"), 'PRETTY_NAME="Test Linux 1"\n');
      writeFileSync(join(root, "proc/cpuinfo"), TWO_SOCKETS);
      const facts = await gatherHostFacts(root);
      assert.equal(facts.os, "Test Linux 1");
      assert.equal(facts.cpuSockets, 2);
      assert.equal(facts.cpuCores, 4);
      assert.ok(facts.memoryBytes > 0, "memory from node:os");
      const bare = await gatherHostFacts(join(root, "nowhere"));
      assert.ok(bare.os.length > 0 && bare.cpuCores > 0, "node:os fallbacks");
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
