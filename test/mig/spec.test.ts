import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { InputError } from "../../src/errors.js";
import { parseMigSpec } from "../../src/mig/spec.js";

const FIXTURE = "test/fixtures/mig/gpu-operator-default.yaml";

/** Asserts that parsing throws an InputError at `line` whose message matches `message`. */
function rejects(text: string, line: number, message: RegExp, column?: number): InputError {
  try {
    parseMigSpec(text, "spec.yaml");
  } catch (err) {
    assert.ok(err instanceof InputError, `expected InputError, got ${String(err)}`);
    assert.match(err.message, message);
    assert.equal(err.file, "spec.yaml");
    assert.equal(err.line, line, `line of: ${err.message}`);
    if (column !== undefined) assert.equal(err.column, column, `column of: ${err.message}`);
    assert.ok(err.message.startsWith(`spec.yaml:${line}:`), err.message);
    return err;
  }
  assert.fail("expected the spec to be rejected");
}

const lines = (...l: string[]) => `${l.join("\n")}\n`;

describe("spec: mig-parted v1", () => {
  it("accepts NVIDIA's shipped gpu-operator config unchanged", () => {
    const spec = parseMigSpec(readFileSync(FIXTURE, "utf8"), FIXTURE);
    assert.equal(spec.version, "v1");
    assert.equal(spec.configs.length, 68);
    const balanced = spec.configs.find((c) => c.name === "all-balanced");
    assert.equal(balanced?.entries.length, 10);
    const a30 = balanced?.entries.find((e) => e.deviceFilter.some((f) => f.text === "0x20B710DE"));
    assert.deepEqual(a30?.deviceFilter, [{ text: "0x20B710DE", pciDeviceId: 0x20b710de, pciSubsystemId: null }]);
    assert.deepEqual(
      a30?.migDevices.map((d) => [d.key, d.count]),
      [
        ["1g.6gb", 2],
        ["2g.12gb", 1],
      ],
    );
    const disabled = spec.configs.find((c) => c.name === "all-disabled")?.entries[0];
    assert.equal(disabled?.migEnabled, false);
    assert.equal(disabled?.devices, "all");
    const rtx = spec.configs.find((c) => c.name === "all-1g.24gb.me.all")?.entries[0]?.migDevices[0];
    assert.deepEqual(rtx?.profile.attributes, ["me.all"]);
    assert.equal(rtx?.at.file, FIXTURE);
  });

  it("accepts mig-parted's example config with per-index entries", () => {
    const spec = parseMigSpec(
      lines(
        "version: v1",
        "mig-configs:",
        "  custom-config:",
        "    - devices: [0,1,2,3]",
        "      mig-enabled: false",
        "    - devices: [4]",
        "      mig-enabled: true",
        "      mig-devices:",
        '        "1g.5gb": 7',
      ),
      "example.yaml",
    );
    const entries = spec.configs[0]?.entries ?? [];
    assert.deepEqual(
      entries[0]?.devices,
      [0, 1, 2, 3].map((index) => ({ kind: "index", index })),
    );
    assert.equal(entries[1]?.at.line, 6);
    assert.equal(entries[1]?.migDevices[0]?.at.line, 9);
  });

  it("reads YAML 1.1 booleans as mig-parted's go-yaml does", () => {
    const spec = parseMigSpec(
      lines("version: v1", "mig-configs:", "  off:", "    - devices: all", "      mig-enabled: no"),
      "spec.yaml",
    );
    assert.equal(spec.configs[0]?.entries[0]?.migEnabled, false);
  });

  it("rejects a spec without a version, or with another one", () => {
    rejects(lines("mig-configs:", "  a:", "    - devices: all", "      mig-enabled: false"), 1, /missing 'version'/);
    rejects(lines("version: v2", "mig-configs: {}"), 1, /unknown version 'v2': expected v1 or tessera\/v1/, 10);
    assert.throws(() => parseMigSpec("", "spec.yaml"), /empty MIG spec/);
  });

  it("rejects unknown fields and lists the valid ones", () => {
    rejects(
      lines("version: v1", "mig-config:", "  a: []"),
      2,
      /unexpected field 'mig-config'; valid fields here: version, mig-configs/,
    );
    rejects(
      lines("version: v1", "mig-configs:", "  a:", "    - devices: all", "      mig-enabled: false", "      gpus: [0]"),
      6,
      /unexpected field 'gpus'; valid fields here: device-filter, devices, mig-enabled, mig-devices/,
      7,
    );
    rejects(
      lines(
        "version: v1",
        "mig-configs:",
        "  a:",
        "    - devices: all",
        '      device-model: "NVIDIA A30"',
        "      mig-enabled: false",
      ),
      5,
      /device-model needs 'version: tessera\/v1'/,
    );
  });

  it("rejects a bare device index as mig-parted does, and says how to write it", () => {
    rejects(
      lines("version: v1", "mig-configs:", "  a:", "    - devices: 7", "      mig-enabled: false"),
      4,
      /devices must be 'all' or a list of GPU indexes.*write \[7\]/,
      16,
    );
  });

  it("requires devices and mig-enabled", () => {
    rejects(
      lines("version: v1", "mig-configs:", "  a:", "    - devices: all"),
      4,
      /missing required field 'mig-enabled'/,
    );
    rejects(
      lines("version: v1", "mig-configs:", "  a:", "    - mig-enabled: false"),
      4,
      /missing required field 'devices'/,
    );
  });

  it("enforces mig-parted's rules on mig-devices", () => {
    rejects(
      lines("version: v1", "mig-configs:", "  a:", "    - devices: all", "      mig-enabled: true"),
      4,
      /missing required field 'mig-devices' when 'mig-enabled' is true/,
    );
    rejects(
      lines(
        "version: v1",
        "mig-configs:",
        "  a:",
        "    - devices: all",
        "      mig-enabled: false",
        "      mig-devices:",
        '        "1g.5gb": 1',
      ),
      7,
      /mig-devices listed while 'mig-enabled' is false/,
    );
    rejects(
      lines(
        "version: v1",
        "mig-configs:",
        "  a:",
        "    - devices: all",
        "      mig-enabled: true",
        "      mig-devices:",
        '        "1g.5gb": 0',
      ),
      7,
      /all counts in mig-devices are 0/,
    );
    rejects(
      lines(
        "version: v1",
        "mig-configs:",
        "  a:",
        "    - devices: all",
        "      mig-enabled: true",
        "      mig-devices:",
        '        "1g.5gb": -1',
      ),
      7,
      /count for '1g.5gb': a count must be a whole number ≥ 0/,
    );
  });

  it("points at a malformed profile key and gives the grammar", () => {
    const err = rejects(
      lines(
        "version: v1",
        "mig-configs:",
        "  a:",
        "    - devices: all",
        "      mig-enabled: true",
        "      mig-devices:",
        '        "1g.5gbb": 1',
      ),
      7,
      /invalid MIG profile '1g.5gbb'.*expected \[<c>c\.\]<g>g\.<gb>gb/,
    );
    assert.equal(err.column, 9);
    rejects(
      lines(
        "version: v1",
        "mig-configs:",
        "  a:",
        "    - devices: all",
        "      mig-enabled: true",
        "      mig-devices:",
        '        "3g.40gb@4": 1',
      ),
      7,
      /need 'version: tessera\/v1'/,
    );
  });

  it("checks device filters and says how to quote them", () => {
    rejects(
      lines(
        "version: v1",
        "mig-configs:",
        "  a:",
        "    - device-filter: 0x20B710DE",
        "      devices: all",
        "      mig-enabled: false",
      ),
      4,
      /device-filter must be a string or a list of strings.*quote hex ids/,
    );
    rejects(
      lines(
        "version: v1",
        "mig-configs:",
        "  a:",
        '    - device-filter: ["0x20B710DE", "A30"]',
        "      devices: all",
        "      mig-enabled: false",
      ),
      4,
      /invalid device-filter 'A30'/,
    );
    const spec = parseMigSpec(
      lines(
        "version: v1",
        "mig-configs:",
        "  a:",
        '    - device-filter: "0x233010DE:0x16C110DE"',
        "      devices: all",
        "      mig-enabled: false",
      ),
      "spec.yaml",
    );
    assert.deepEqual(spec.configs[0]?.entries[0]?.deviceFilter[0], {
      text: "0x233010DE:0x16C110DE",
      pciDeviceId: 0x233010de,
      pciSubsystemId: 0x16c110de,
    });
  });

  it("requires non-empty mig-configs and entry lists", () => {
    rejects(lines("version: v1", "mig-configs: {}"), 2, /at least one entry in 'mig-configs' is required/);
    rejects(lines("version: v1", "mig-configs:", "  a: []"), 3, /at least one entry in 'a' is required/);
  });

  it("reports YAML errors with their position", () => {
    rejects(lines("version: v1", "mig-configs:", "  a: []", "  a: []"), 4, /invalid YAML: Map keys must be unique/, 3);
  });
});

describe("spec: tessera/v1", () => {
  it("adds pinned placements, UUID selection and model selection", () => {
    const spec = parseMigSpec(
      lines(
        "version: tessera/v1",
        "mig-configs:",
        "  inference:",
        "    - devices: [0, GPU-0000000a-1111-4111-8111-111111111111]",
        '      device-model: "NVIDIA H100 80GB HBM3"',
        "      mig-enabled: true",
        "      mig-devices:",
        '        "3g.40gb@4": 1',
        '        "1c.3g.40gb@0": 3',
      ),
      "t.yaml",
    );
    const entry = spec.configs[0]?.entries[0];
    assert.deepEqual(entry?.devices, [
      { kind: "index", index: 0 },
      { kind: "uuid", uuid: "GPU-0000000a-1111-4111-8111-111111111111" },
    ]);
    assert.deepEqual(entry?.deviceModels, ["NVIDIA H100 80GB HBM3"]);
    assert.deepEqual(
      entry?.migDevices.map((d) => [d.profile.computeSlices, d.profile.gpuSlices, d.start, d.count]),
      [
        [3, 3, 4, 1],
        [1, 3, 0, 3],
      ],
    );
  });

  it("rejects a devices item that is neither index nor UUID", () => {
    rejects(
      lines("version: tessera/v1", "mig-configs:", "  a:", "    - devices: [gpu0]", "      mig-enabled: false"),
      4,
      /'gpu0' is neither a GPU index nor a GPU UUID/,
    );
  });

  it("treats keys pinned to one start as one GPU instance", () => {
    const head = [
      "version: tessera/v1",
      "mig-configs:",
      "  a:",
      "    - devices: all",
      "      mig-enabled: true",
      "      mig-devices:",
    ];
    rejects(lines(...head, '        "3g.40gb@4": 2'), 7, /pins one GPU instance, so its count must be 1/);
    rejects(
      lines(...head, '        "1c.3g.40gb@0": 2', '        "1c.4g.40gb@0": 1'),
      8,
      /pin different GPU instances to memory slice 0/,
    );
    rejects(
      lines(...head, '        "2c.3g.40gb@0": 1', '        "1c.3g.40gb@0": 2'),
      7,
      /need 4 compute slices, but 3g.40gb has 3/,
    );
    const ok = parseMigSpec(lines(...head, '        "2c.3g.40gb@0": 1', '        "1c.3g.40gb@0": 1'), "t.yaml");
    assert.equal(ok.configs[0]?.entries[0]?.migDevices.length, 2);
  });
});
