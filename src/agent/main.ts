#!/usr/bin/env -S node --max-semi-space-size=2 --no-opt
// tessera-agent (package.json "bin"; `npm run agent` runs it from source). The V8 flag keeps the
// young generation small: the agent allocates little at a time, and V8's default (16 MB semi-spaces)
// would cost tens of MB of resident memory for nothing (bench/agent-overhead.ts).
import { errorMessage } from "../errors.js";
import { runAgent } from "./run.js";

runAgent(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
    // Workers and sockets are closed; a thread stuck in a hung NVML call must not keep the process alive.
    setTimeout(() => process.exit(code), 500).unref();
  },
  (err: unknown) => {
    process.stderr.write(`tessera-agent: ${errorMessage(err)}\n`);
    process.exit(1);
  },
);
