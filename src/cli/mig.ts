import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Command } from "commander";
import { InputError } from "../errors.js";
import { MigManager } from "../mig/manager.js";
import { simulatorLibraryPath } from "../nvml/index.js";
import { SimControl } from "../sim/control.js";
import { addNvmlOptions, type NvmlCliOptions, openNvmlFromOptions } from "./nvml-options.js";
import { parseOutputFormat, renderTable, toJson } from "./table.js";

interface MigCliOptions extends NvmlCliOptions {
  output: string;
  stateDir?: string;
}

/** Journals and learned geometry: --state-dir, TESSERA_STATE_DIR, beside the simulator's state, or /var/lib/tessera. */
function stateDirFor(opts: MigCliOptions): string {
  if (opts.stateDir) return opts.stateDir;
  const env = process.env.TESSERA_STATE_DIR;
  if (env) return join(env, "mig");
  if (opts.sim) return `${SimControl.open(simulatorLibraryPath()).statePath()}.d`;
  return "/var/lib/tessera/mig";
}

function readSpec(file: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch (err) {
    throw new InputError(`cannot read spec: ${(err as Error).message}`, { file });
  }
}

async function withManager<T>(opts: MigCliOptions, writable: boolean, fn: (m: MigManager) => Promise<T>): Promise<T> {
  const { nvml } = await openNvmlFromOptions(opts, writable);
  try {
    const manager = new MigManager({ nvml, stateDir: stateDirFor(opts) });
    const recovered = writable ? await manager.init() : [];
    for (const r of recovered) process.stderr.write(`tessera mig: recovered: ${r.message}\n`);
    return await fn(manager);
  } finally {
    nvml.shutdown();
  }
}

function common(cmd: Command): Command {
  addNvmlOptions(cmd);
  return cmd
    .option("-o, --output <format>", "table or json", "table")
    .option("--state-dir <dir>", "journals and learned MIG geometry (default /var/lib/tessera/mig)");
}

/** `tessera mig show|plan|apply|export`: MIG layouts from mig-parted's config format (or Tessera's), as a minimal diff. */
export function migCommand(): Command {
  const mig = new Command("mig").description("MIG layouts: show, plan, apply, export");

  common(mig.command("show").description("each GPU's MIG mode, instances, slot map and fragmentation")).action(
    async (opts: MigCliOptions) => {
      const format = parseOutputFormat(opts.output);
      await withManager(opts, false, async (m) => {
        const views = m.show();
        if (format === "json") {
          process.stdout.write(`${toJson(views.map(({ geometry: _g, ...v }) => v))}\n`);
          return;
        }
        process.stdout.write(
          `${renderTable(
            ["GPU", "MODEL", "MIG", "SLOTS", "INSTANCES", "LARGEST FREE"],
            views.map((v) => [
              String(v.index),
              v.model,
              !v.migCapable
                ? "n/a"
                : v.layout.mode.current === v.layout.mode.pending
                  ? v.layout.mode.current
                  : `${v.layout.mode.current}→${v.layout.mode.pending}`,
              v.slotMap,
              String(v.layout.instances.length),
              v.fragmentation ? (v.fragmentation.largestPlaceable ?? "none") : "-",
            ]),
          )}\n`,
        );
      });
    },
  );

  common(
    mig
      .command("plan")
      .description("the minimal change from the current layout to a spec, per GPU, before and after")
      .requiredOption("-f, --file <spec>", "mig-parted v1 config or tessera/v1 spec (YAML)")
      .option("-c, --config <name>", "which mig-config of the file"),
  ).action(async (opts: MigCliOptions & { file: string; config?: string }) => {
    const format = parseOutputFormat(opts.output);
    const text = readSpec(opts.file);
    await withManager(opts, false, async (m) => {
      const planned = m.plan(text, opts.file, opts.config ?? null);
      process.stdout.write(format === "json" ? `${toJson(planned)}\n` : `${planned.rendered}\n`);
      if (!planned.plan.feasible) process.exitCode = 2;
    });
  });

  common(
    mig
      .command("apply")
      .description("apply a spec: keeps matching instances, refuses to destroy busy or leased ones unless --force")
      .requiredOption("-f, --file <spec>", "mig-parted v1 config or tessera/v1 spec (YAML)")
      .option("-c, --config <name>", "which mig-config of the file")
      .option("--dry-run", "plan and check, change nothing")
      .option("--force", "destroy instances even when processes run on them or leases hold them"),
  ).action(async (opts: MigCliOptions & { file: string; config?: string; dryRun?: boolean; force?: boolean }) => {
    const format = parseOutputFormat(opts.output);
    const text = readSpec(opts.file);
    await withManager(opts, !opts.dryRun, async (m) => {
      const report = await m.apply(text, opts.file, opts.config ?? null, {
        dryRun: opts.dryRun ?? false,
        force: opts.force ?? false,
      });
      if (format === "json") process.stdout.write(`${toJson(report)}\n`);
      else {
        process.stdout.write(`${report.planned.rendered}\n\n`);
        process.stdout.write(
          `${renderTable(
            ["GPU", "OUTCOME", "DETAIL"],
            report.results.map((r) => [String(r.gpuIndex), r.outcome, r.message]),
          )}\n`,
        );
      }
      if (report.results.some((r) => r.outcome === "rolled-back" || r.outcome === "failed")) process.exitCode = 1;
    });
  });

  common(
    mig
      .command("export")
      .description("the current layout as a mig-parted config (config name: current)")
      .option("--pinned", "tessera/v1 with placements, reproducing the layout slot for slot"),
  ).action(async (opts: MigCliOptions & { pinned?: boolean }) => {
    await withManager(opts, false, async (m) => {
      const yaml = m.exportConfig({ pinned: opts.pinned ?? false });
      process.stdout.write(parseOutputFormat(opts.output) === "json" ? `${toJson({ yaml })}\n` : yaml);
    });
  });
  return mig;
}
