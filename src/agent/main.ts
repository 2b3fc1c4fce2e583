#!/usr/bin/env -S node --max-semi-space-size=2 --no-opt
// tessera-agent (package.json "bin"; `npm run agent` runs it from source). The V8 flags suit a
// daemon that does a little work often: a small young generation (V8's default 16 MB semi-spaces
// cost tens of MB of resident memory for nothing), and no optimizing compiler (on a 2-core VM it
// took more CPU compiling the agent's code than it saved running it, and its code about 7 MB of
// memory: in bench/agent-overhead.ts 0.83 % of a core and 92 MB with it off, 0.94–1.04 % and 98 MB
// with it on; under 100 watchers at 10 Hz, where it would pay off, the agent still uses < 5 %).
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
