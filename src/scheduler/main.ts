#!/usr/bin/env node
// tessera-scheduler (package.json "bin"; `npm run scheduler` runs it from source).
import { errorMessage } from "../errors.js";
import { runScheduler } from "./run.js";

runScheduler(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
    setTimeout(() => process.exit(code), 500).unref();
  },
  (err: unknown) => {
    process.stderr.write(`tessera-scheduler: ${errorMessage(err)}\n`);
    process.exit(1);
  },
);
