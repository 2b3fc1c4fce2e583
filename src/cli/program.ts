import { Command, CommanderError } from "commander";
import { errorMessage, TesseraError } from "../errors.js";
import { diagCommand } from "./diag.js";
import { fabricCommand } from "./fabric.js";
import { inspectCommand } from "./inspect.js";
import { migCommand } from "./mig.js";
import { schedulerCommands } from "./scheduler.js";
import { simCommand } from "./sim.js";

export function buildProgram(): Command {
  const program = new Command("tessera")
    .description("Tessera: GPU node inspection, MIG partitioning, fabric health and placement on MIG slices")
    .version("0.1.0")
    .showHelpAfterError()
    .exitOverride();
  program.addCommand(inspectCommand());
  program.addCommand(migCommand());
  program.addCommand(fabricCommand());
  program.addCommand(diagCommand());
  program.addCommand(simCommand());
  for (const command of schedulerCommands()) program.addCommand(command);
  return program;
}

export async function main(argv: readonly string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv as string[], { from: "user" });
    return typeof process.exitCode === "number" ? process.exitCode : 0;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode;
    const code = err instanceof TesseraError ? ` [${err.code}]` : "";
    process.stderr.write(`tessera: ${errorMessage(err)}${code}\n`);
    return 1;
  }
}
