import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import {
  CHECKPOINT_FILE,
  LeaseCheckpointCorruptError,
  readCheckpoint,
  setAsideCheckpoint,
  writeCheckpoint,
} from "../../src/ledger/checkpoint.js";
import { Ledger } from "../../src/ledger/ledger.js";
import { EMPTY_LEDGER, type Lease, type LedgerState } from "../../src/ledger/types.js";

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), "tessera-ledger-"));
});
after(() => rmSync(dir, { recursive: true, force: true }));

const lease = (id: string, extra: Partial<Lease> = {}): Lease => ({
  workloadId: id,
  tenant: "t",
  gpuIndex: 1,
  gpuUuid: "GPU-aaaaaaaa-0000",
  migUuid: `MIG-${id}-0000-0000`,
  gpuInstanceId: 2,
  computeInstanceId: 0,
  profileId: undefined,
  profileName: "1g.10gb",
  placement: { start: 3, size: 1 },
  createdAtMs: 1_700_000_000_000,
  instanceCreated: false,
  ...extra,
});

const state: LedgerState = {
  leases: new Map([
    ["a", lease("a")],
    [
      "whole",
      lease("whole", {
        migUuid: undefined,
        gpuInstanceId: undefined,
        computeInstanceId: undefined,
        placement: undefined,
      }),
    ],
  ]),
  pending: new Map([
    [
      "p",
      {
        workloadId: "p",
        tenant: "t",
        gpuIndex: 0,
        gpuUuid: "GPU-bbbbbbbb-0000",
        profileId: 9,
        profileName: "3g.40gb",
        placement: { start: 4, size: 4 },
        startedAtMs: 1,
      },
    ],
  ]),
  orphans: [{ gpuUuid: "GPU-bbbbbbbb-0000", gpuInstanceId: 5, profileId: 19, placementStart: 6, reason: "r" }],
};

describe("lease checkpoint", () => {
  it("round-trips the ledger, absent fields included", async () => {
    const path = join(dir, "roundtrip", CHECKPOINT_FILE);
    await writeCheckpoint(path, state, 123);
    assert.deepEqual(await readCheckpoint(path), state);
    assert.equal(await readCheckpoint(join(dir, "missing", CHECKPOINT_FILE)), undefined);
    assert.deepEqual(readdirSync(join(dir, "roundtrip")), [CHECKPOINT_FILE], "no temp files left behind");
  });

  const corruptions: [string, (text: string) => string, RegExp][] = [
    ["an edited value", (t) => t.replace('"tenant": "t"', '"tenant": "u"'), /checksum mismatch/],
    ["a truncated file", (t) => t.slice(0, t.length / 2), /not JSON/],
    [
      "another kind of file",
      (t) => t.replace('"tessera.leases"', '"tessera.other"'),
      /expected a tessera\.leases file/,
    ],
    ["a payload that is not a ledger", (t) => t, /leases/],
  ];
  for (const [what, corrupt, reason] of corruptions) {
    it(`refuses ${what}, naming the file and how to recover`, async () => {
      const path = join(dir, what.replace(/\W+/g, "-"), CHECKPOINT_FILE);
      await writeCheckpoint(path, state, 1);
      let text = corrupt(readFileSync(path, "utf8"));
      if (what === "a payload that is not a ledger") {
        // A correct envelope around a wrong payload: the schema still refuses it.
        const { sealJson } = await import("../../src/util/atomic-file.js");
        text = sealJson("tessera.leases", 1, { savedAtMs: 1, leases: [{ nope: true }], pending: [], orphans: [] });
      }
      writeFileSync(path, text);
      await assert.rejects(readCheckpoint(path), (err: unknown) => {
        assert.ok(err instanceof LeaseCheckpointCorruptError, String(err));
        assert.equal(err.code, "TESSERA_LEASES_CORRUPT");
        assert.ok(err.message.includes(path), err.message);
        assert.match(err.message, reason);
        assert.match(err.message, /--discard-corrupt-leases/);
        return true;
      });
      const aside = await setAsideCheckpoint(path, 42);
      assert.equal(aside, `${path}.corrupt-42`);
      assert.equal(await readCheckpoint(path), undefined);
    });
  }
});

describe("Ledger", () => {
  it("writes the checkpoint before the new state becomes visible, one commit at a time", async () => {
    const path = join(dir, "ledger", CHECKPOINT_FILE);
    const ledger = new Ledger(path, EMPTY_LEDGER, () => 7);
    const commits = [1, 2, 3].map((i) => ledger.commit({ putLeases: [lease(`w${i}`)] }));
    assert.equal(ledger.state.leases.size, 0, "nothing is visible before it is durable");
    await Promise.all(commits);
    assert.equal(ledger.writes, 3);
    assert.deepEqual([...((await readCheckpoint(path))?.leases.keys() ?? [])].sort(), ["w1", "w2", "w3"]);
    await ledger.commit({ removeLeases: ["w2"] });
    assert.deepEqual([...ledger.state.leases.keys()].sort(), ["w1", "w3"]);
    assert.deepEqual(ledger.holders(), { "MIG-w1-0000-0000": ["w1"], "MIG-w3-0000-0000": ["w3"] });
  });

  it("keeps the old state when the checkpoint cannot be written", async () => {
    const blocked = join(dir, "file-not-dir");
    writeFileSync(blocked, "");
    const ledger = new Ledger(join(blocked, CHECKPOINT_FILE), EMPTY_LEDGER);
    await assert.rejects(ledger.commit({ putLeases: [lease("x")] }));
    assert.equal(ledger.state.leases.size, 0);
  });
});
