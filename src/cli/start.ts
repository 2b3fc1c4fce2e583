// `npm start`: a whole Tessera cluster on this machine (src/scheduler/demo.ts): tessera-scheduler and
// three tessera-agents on simulated hosts (dgx-h100, dgx-a100, mixed), a stream of workloads, and a
// live view of slot maps, fragmentation and acceptance. On a terminal it runs until Ctrl-C; when
// stdout is not a terminal (CI) it prints a few frames and stops by itself after about 20 s.
// TESSERA_START_SECONDS sets how long it runs (0: until Ctrl-C).
import { errorMessage } from "../errors.js";
import { runClusterDemo } from "../scheduler/demo.js";

const tty = process.stdout.isTTY === true;
const fromEnv = process.env.TESSERA_START_SECONDS;
const seconds = fromEnv !== undefined && /^\d+$/.test(fromEnv) ? Number(fromEnv) : tty ? 0 : 16;
const controller = new AbortController();
let interrupted = 0;
const onSignal = (signal: NodeJS.Signals) => {
  interrupted++;
  if (interrupted > 1) {
    process.stderr.write(`\n${signal} again: exiting without cleaning up\n`);
    process.exit(130);
  }
  controller.abort();
};
process.on("SIGINT", onSignal);
process.on("SIGTERM", onSignal);

runClusterDemo({
  out: process.stdout,
  durationMs: seconds === 0 ? undefined : seconds * 1000,
  frameMs: tty ? 1000 : 4000,
  signal: controller.signal,
}).then(
  () => {
    process.stdout.write("stopped.\n");
    // Everything is closed; a straggling handle must not keep the demo alive.
    setTimeout(() => process.exit(0), 500).unref();
  },
  (err: unknown) => {
    process.stderr.write(`npm start: ${errorMessage(err)}\n`);
    process.exit(1);
  },
);
