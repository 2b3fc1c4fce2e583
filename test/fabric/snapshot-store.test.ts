import assert from "node:assert/strict";
import { chmodSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import type { PortHistory } from "../../src/fabric/history.js";
import {
  decodeSnapshots,
  encodeSnapshots,
  type FabricCounterState,
  loadSnapshots,
  SNAPSHOT_FILE_NAME,
  SnapshotCorruptError,
  SnapshotWriteError,
  saveSnapshots,
} from "../../src/fabric/snapshot-store.js";
import { tempDir } from "./helpers.js";

function state(): FabricCounterState {
  const history: PortHistory = {
    sample: {
      atMs: 1_700_000_000_000,
      bootId: "3e2f1b5c-8a4d-4f6e-9b7a-1c2d3e4f5a6b",
      extended: true,
      values: { "counters/port_xmit_data": 18446744073709551615n, "counters/symbol_error": 3n },
    },
    up: true,
    increments: [{ atMs: 1_699_999_999_000, intervalMs: 1000, deltas: { "counters/symbol_error": 3 } }],
    transitions: [{ atMs: 1_699_999_000_000, up: true }],
  };
  const noBoot: PortHistory = {
    sample: { atMs: 1, bootId: undefined, extended: false, values: {} },
    up: undefined,
    increments: [],
    transitions: [],
  };
  return {
    sysfsRoot: "/sys",
    ports: new Map([
      ["mlx5_0/1", history],
      ["mlx5_1/1", noBoot],
    ]),
  };
}

describe("encodeSnapshots / decodeSnapshots", () => {
  it("round-trips state, including u64 counters and absent boot ids", () => {
    const text = encodeSnapshots(state(), 42);
    const back = decodeSnapshots(text);
    assert.equal(back.savedAtMs, 42);
    assert.equal(back.sysfsRoot, "/sys");
    assert.deepEqual(back.ports, state().ports);
  });

  const text = encodeSnapshots(state(), 42);
  const [header = "", body = ""] = text.split("\n");
  const corruptions: [string, string, RegExp][] = [
    ["a flipped byte in the body", text.replace('symbol_error":3}', 'symbol_error":4}'), /checksum mismatch/],
    ["a truncated file", text.slice(0, text.length - 20), /truncated|checksum/],
    ["an empty file", "", /no header/],
    ["another file's header", `something-else 1 sha256=${"0".repeat(64)}\n${body}\n`, /not a fabric snapshot/],
    ["a future format version", `${header.replace(" 1 ", " 2 ")}\n${body}\n`, /unsupported format version 2/],
  ];
  for (const [name, corrupt, message] of corruptions) {
    it(`rejects ${name}`, () => {
      assert.notEqual(corrupt, text, "the corruption must change the file");
      assert.throws(
        () => decodeSnapshots(corrupt),
        (err) => err instanceof SnapshotCorruptError && message.test(err.message),
      );
    });
  }

  it("rejects a body with a valid checksum but the wrong shape", async () => {
    const { createHash } = await import("node:crypto");
    const bad = JSON.stringify({ version: 1, savedAtMs: 1, sysfsRoot: "/sys", ports: { "mlx5_0/1": { sample: 7 } } });
    const sum = createHash("sha256").update(bad).digest("hex");
    assert.throws(
      () => decodeSnapshots(`tessera-fabric-snapshots 1 sha256=${sum}\n${bad}\n`),
      /ports\.mlx5_0\/1\.sample/,
    );
  });
});

describe("saveSnapshots / loadSnapshots", () => {
  it("reports a missing file as missing", async (t) => {
    const dir = tempDir(t);
    assert.equal((await loadSnapshots(dir)).status, "missing");
  });

  it("writes atomically and reads back, leaving no temp files", async (t) => {
    const dir = join(tempDir(t), "nested", "state");
    const path = await saveSnapshots(dir, state(), 7);
    assert.equal(path, join(dir, SNAPSHOT_FILE_NAME));
    await saveSnapshots(dir, state(), 8);
    assert.deepEqual(readdirSync(dir), [SNAPSHOT_FILE_NAME]);
    const loaded = await loadSnapshots(dir);
    assert.equal(loaded.status, "ok");
    if (loaded.status === "ok") {
      assert.equal(loaded.savedAtMs, 8);
      assert.deepEqual(loaded.state.ports, state().ports);
    }
  });

  it("reports a corrupt file and ignores it instead of trusting it", async (t) => {
    const dir = tempDir(t);
    await saveSnapshots(dir, state(), 7);
    const path = join(dir, SNAPSHOT_FILE_NAME);
    writeFileSync(path, readFileSync(path, "utf8").replace('"up":true', '"up":false'));
    const loaded = await loadSnapshots(dir);
    assert.equal(loaded.status, "corrupt");
    if (loaded.status === "corrupt") assert.match(loaded.reason, /checksum mismatch/);
  });

  it("fails with a typed error when the directory cannot be written", async (t) => {
    if (process.getuid?.() === 0) return t.skip("root can write anywhere");
    const dir = tempDir(t);
    mkdirSync(join(dir, "ro"));
    chmodSync(join(dir, "ro"), 0o500);
    t.after(() => chmodSync(join(dir, "ro"), 0o700));
    await assert.rejects(saveSnapshots(join(dir, "ro"), state(), 1), SnapshotWriteError);
  });

  it("fails with a typed error when the state dir is a file", async (t) => {
    const dir = tempDir(t);
    writeFileSync(join(dir, "file"), "x");
    await assert.rejects(saveSnapshots(join(dir, "file"), state(), 1), SnapshotWriteError);
  });
});
