// WatchNode fan-out: 100 watchers at 10 Hz on the simulated DGX H100 with 56 MIG devices. Prints
// one JSON line: samples delivered per second (1000/s is every sample to every watcher), samples
// the agent said were missed, the sampler's jitter (how far each sweep's start strays from 100 ms
// after the previous one, from the samples' own timestamps), and the agent's CPU.
// Run: node --import tsx bench/watch-fanout.ts [--seconds 30] [--warmup 15] [--watchers 100]
import { parseArgs } from "node:util";
import { create } from "@bufbuild/protobuf";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import * as grpc from "@grpc/grpc-js";
import { WatchNodeRequestSchema, type WatchNodeResponse } from "../src/gen/tessera/v1/agent_pb.js";
import { createAgentClient } from "../src/rpc/client.js";
import {
  buildDist,
  cleanup,
  cpuSeconds,
  memoryMB,
  migHeavyHost,
  round,
  startBenchAgent,
  tempDir,
} from "./lib/agent-harness.js";

const { values } = parseArgs({
  options: {
    seconds: { type: "string", default: "30" },
    warmup: { type: "string", default: "15" },
    watchers: { type: "string", default: "100" },
  },
});
const seconds = Number(values.seconds);
const warmupS = Number(values.warmup);
const WATCHERS = Number(values.watchers);
const INTERVAL_MS = 100;
const CHANNELS = 4;

function quantile(sorted: readonly number[], q: number): number {
  return sorted.length === 0
    ? Number.NaN
    : (sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number);
}

const dir = tempDir("fanout");
buildDist();
await migHeavyHost(dir);
const agent = await startBenchAgent(dir, 1000);
const pid = agent.child.pid as number;
const clients = Array.from({ length: CHANNELS }, () => createAgentClient(agent.tcp, grpc.credentials.createInsecure()));
let measuring = false;
let delivered = 0;
let missed = 0n;
/** One watcher's sample times and sweep numbers, for the sampler's jitter and lost sweeps. */
const times: number[] = [];
const sweeps: bigint[] = [];
const streams = Array.from({ length: WATCHERS }, (_, i) => {
  const s = (clients[i % CHANNELS] as (typeof clients)[number]).watchNode(
    create(WatchNodeRequestSchema, { intervalMs: INTERVAL_MS }),
  );
  s.on("data", (m: WatchNodeResponse) => {
    if (m.item.case !== "sample" || !measuring) return;
    delivered++;
    missed += m.item.value.missedSamples;
    if (i === 0 && m.item.value.time) {
      times.push(timestampMs(m.item.value.time));
      sweeps.push(m.item.value.sweep);
    }
  });
  s.on("error", () => undefined);
  return s;
});

try {
  await new Promise((r) => setTimeout(r, warmupS * 1000));
  const cpu0 = cpuSeconds(pid);
  measuring = true;
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  measuring = false;
  const elapsed = (performance.now() - t0) / 1000;
  const cpu = cpuSeconds(pid) - cpu0;
  const gaps = times.slice(1).map((t, i) => t - (times[i] as number));
  const jitter = gaps.map((g) => Math.abs(g - INTERVAL_MS)).sort((a, b) => a - b);
  const skipped = sweeps.slice(1).reduce((n, s, i) => n + Number(s - (sweeps[i] as bigint) - 1n), 0);
  process.stdout.write(
    `${JSON.stringify({
      bench: "watch-fanout",
      host: "nvml-sim dgx-h100",
      migDevices: 56,
      watchers: WATCHERS,
      intervalMs: INTERVAL_MS,
      seconds: round(elapsed, 1),
      samplesPerSecond: round(delivered / elapsed, 1),
      expectedPerSecond: (WATCHERS * 1000) / INTERVAL_MS,
      missedSamplesReported: Number(missed),
      samplerJitterMs: {
        p50: round(quantile(jitter, 0.5)),
        p99: round(quantile(jitter, 0.99)),
        max: round(jitter.at(-1) ?? Number.NaN),
      },
      sweepsNotSeenByWatcher0: skipped,
      agentCpuPercentOfCore: round((cpu / elapsed) * 100, 2),
      agentRssMB: round(memoryMB(pid).rss, 1),
    })}\n`,
  );
} finally {
  for (const s of streams) s.cancel();
  for (const c of clients) c.close();
  await agent.stop();
  cleanup(dir);
}
