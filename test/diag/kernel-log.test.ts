import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import fc from "fast-check";
import { normalizePciPrefix, parseKernelLog, readBootTimeMs, readKernelLog } from "../../src/diag/kernel-log.js";

const FIXTURES = join(import.meta.dirname, "..", "fixtures", "diag");
const fixture = (name: string) => readFileSync(join(FIXTURES, name), "utf8");
const BOOT_MS = Date.UTC(2026, 6, 1, 9, 0, 0);

describe("parseKernelLog", () => {
  const cases: {
    name: string;
    line: string;
    want: {
      code: number;
      pciAddress: string;
      pid?: number;
      processName?: string;
      gpuInstanceId?: number;
      message?: string;
      atMs?: number;
    };
  }[] = [
    {
      name: "GPUd's sample line (journal short-iso)",
      line: "2026-07-01T12:00:03+0000 host kernel: NVRM: Xid (PCI:0000:9b:00): 119, pid=2024380, name=nvidia-smi, Timeout after 6s",
      want: {
        code: 119,
        pciAddress: "0000:9b:00",
        pid: 2024380,
        processName: "nvidia-smi",
        message: "Timeout after 6s",
        atMs: Date.UTC(2026, 6, 1, 12, 0, 3),
      },
    },
    {
      name: "unknown pid and name (fallen off the bus)",
      line: "NVRM: Xid (PCI:0000:61:00): 79, pid='<unknown>', name=<unknown>, GPU has fallen off the bus.",
      want: { code: 79, pciAddress: "0000:61:00", message: "GPU has fallen off the bus." },
    },
    {
      name: "no pid at all",
      line: "NVRM: Xid (PCI:0000:3b:00): 13, Graphics SM Warp Exception on (GPC 0, TPC 0): Out Of Range Address",
      want: {
        code: 13,
        pciAddress: "0000:3b:00",
        message: "Graphics SM Warp Exception on (GPC 0, TPC 0): Out Of Range Address",
      },
    },
    {
      name: "a MIG GPU instance after the address",
      line: "[ 9012.000001] NVRM: Xid (PCI:0000:52:00 GPU-I:05): 31, pid=911, name=infer, Ch 00000010",
      want: {
        code: 31,
        pciAddress: "0000:52:00",
        pid: 911,
        processName: "infer",
        gpuInstanceId: 5,
        atMs: BOOT_MS + 9_012_000,
      },
    },
    {
      name: "an 8-digit domain and no PCI: prefix",
      line: "NVRM: Xid (00000000:DF:00): 94, pid=912, name=infer, Contained: CE User Channel (0x3).",
      want: { code: 94, pciAddress: "0000:df:00", pid: 912 },
    },
    {
      name: "the code at the end of the line",
      line: "[ 9200.250000] NVRM: Xid (0000:9d:00): 43",
      want: { code: 43, pciAddress: "0000:9d:00", message: "" },
    },
    {
      name: "a /dev/kmsg record (microseconds since boot)",
      line: "4,2201,8811402311,-;NVRM: Xid (PCI:0000:1b:00): 119, pid=7, name=x, GSP",
      want: { code: 119, pciAddress: "0000:1b:00", atMs: BOOT_MS + 8_811_402 },
    },
    {
      name: "a fallen-off-the-bus message without an XID line",
      line: "NVRM: GPU 0000:61:00.0: GPU has fallen off the bus.",
      want: { code: 79, pciAddress: "0000:61:00" },
    },
  ];
  for (const c of cases) {
    it(`reads ${c.name}`, () => {
      const [got, ...rest] = parseKernelLog(c.line, { bootTimeMs: BOOT_MS });
      assert.equal(rest.length, 0);
      assert.ok(got, "no XID parsed");
      for (const [key, value] of Object.entries(c.want)) {
        assert.deepEqual(got[key as keyof typeof got], value, `${key} of ${c.line}`);
      }
    });
  }

  it("ignores NVRM lines that are not XIDs and lines of other drivers", () => {
    const text = [
      "NVRM: loading NVIDIA UNIX x86_64 Kernel Module  580.105.08",
      "NVRM: GPU at PCI:0000:61:00: GPU-4c5e0d4f-2a0b-4a52-9f0e-1b7a3c9d2e11",
      "mlx5_core 0000:18:00.0: Port module event: module 0, Cable plugged",
      "nvidia-nvswitch0: SXid (PCI:0000:05:00.0): 12028, Non-fatal, Link 32 egress non-posted PRIV error",
    ].join("\n");
    assert.deepEqual(parseKernelLog(text), []);
  });

  it("counts the driver's XID 79 line and its fallen-off-the-bus line as one event", () => {
    const xids = parseKernelLog(fixture("journal-fallen-off-bus.log"));
    assert.deepEqual(
      xids.map((x) => [x.code, x.pciAddress]),
      [
        [48, "0000:9d:00"],
        [79, "0000:61:00"],
      ],
    );
  });

  it("reads every timestamp style the journal, dmesg and syslog write", () => {
    const at = (name: string) => parseKernelLog(fixture(name), { bootTimeMs: BOOT_MS, year: 2026 }).map((x) => x.atMs);
    assert.deepEqual(at("journal-row-remap.log"), [Date.UTC(2026, 6, 1, 12, 10, 30, 123)]);
    assert.deepEqual(at("dmesg-human.log"), [new Date(2026, 6, 1, 12, 0, 3).getTime()]);
    // syslog's own (local) stamp wins over the kernel's seconds since boot.
    assert.deepEqual(at("syslog-kern.log"), [new Date(2026, 6, 1, 12, 0, 3).getTime()]);
    assert.deepEqual(at("kmsg.txt"), [BOOT_MS + 8_811_402]);
    assert.equal(at("dmesg-seconds.log").length, 5);
    assert.deepEqual(
      parseKernelLog(fixture("dmesg-seconds.log")).map((x) => x.atMs),
      [undefined, undefined, undefined, undefined, undefined],
      "seconds since boot need the boot time",
    );
  });

  it("never throws and only returns codes it found, whatever the text (property)", () => {
    fc.assert(
      fc.property(
        fc.array(fc.oneof(fc.string(), fc.constantFrom("NVRM: Xid (PCI:0000:1b:00): 13, x", "NVRM: Xid ("))),
        (lines) => {
          const xids = parseKernelLog(lines.join("\n"));
          for (const x of xids)
            assert.ok(Number.isInteger(x.code) && /^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}$/.test(x.pciAddress));
        },
      ),
    );
  });
});

describe("normalizePciPrefix", () => {
  for (const [input, want] of [
    ["00000000:1B:00.0", "0000:1b:00"],
    ["0000:1b:00", "0000:1b:00"],
    ["PCI:0000:C3:00", "0000:c3:00"],
    ["0001:0a:1f.3", "0001:0a:1f"],
  ] as const) {
    it(`${input} → ${want}`, () => assert.equal(normalizePciPrefix(input), want));
  }
});

describe("readKernelLog", () => {
  const options = (procRoot: string) => ({ sinceMs: 0, procRoot, timeoutMs: 5000 });

  it("reads a file and the boot time from <procRoot>/stat", async (t) => {
    const dir = mkdtempSync(join(tmpdir(), "tessera-diag-klog-"));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    writeFileSync(join(dir, "stat"), "cpu  1 2 3\nbtime 1782896400\nprocesses 12\n");
    const r = await readKernelLog({ kind: "file", path: join(FIXTURES, "kmsg.txt") }, options(dir));
    assert.equal(r.unavailable, undefined);
    assert.match(r.text ?? "", /Xid/);
    assert.equal(r.bootTimeMs, 1782896400_000);
    assert.equal(await readBootTimeMs(join(dir, "missing")), undefined);
  });

  it("says why when the file cannot be read, and reads nothing for none", async () => {
    const missing = await readKernelLog({ kind: "file", path: "/nonexistent/kern.log" }, options("/nonexistent"));
    assert.equal(missing.text, undefined);
    assert.match(missing.unavailable ?? "", /cannot read \/nonexistent\/kern\.log/);
    const none = await readKernelLog({ kind: "none" }, options("/nonexistent"));
    assert.match(none.unavailable ?? "", /not read/);
  });

  it("reports a kmsg device it cannot open instead of throwing", async () => {
    const r = await readKernelLog({ kind: "kmsg", path: "/nonexistent/kmsg" }, options("/nonexistent"));
    assert.equal(r.text, undefined);
    assert.match(r.unavailable ?? "", /ENOENT/);
  });
});
