// The agent's own cost on a busy host: the simulated DGX H100 with 56 MIG devices, 1 s sampling,
// 4 WatchNode streams and a /metrics scrape every second, for 60 s (after a warm-up). Prints one
// JSON line: CPU as % of one core and peak RSS, against the targets (< 1 % of a core, < 100 MB) and
// what dcgm-exporter is reported to use (reference/monitoring.md §1.5).
// The agent runs from dist/ with the flags of its #! line, as installed; the 60 s are measured after
// a warm-up (the first minute includes start-up and V8 compiling the agent's hot code).
// Run: node --import tsx bench/agent-overhead.ts [--seconds 60] [--warmup 60]
import { parseArgs } from "node:util";
import { create } from "@bufbuild/protobuf";
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
  options: { seconds: { type: "string", default: "60" }, warmup: { type: "string", default: "60" } },
});
const seconds = Number(values.seconds);
const warmupS = Number(values.warmup);
const WATCHERS = 4;
const SAMPLING_MS = 1000;
const SCRAPE_MS = 1000;

const dir = tempDir("overhead");
buildDist();
await migHeavyHost(dir);
const agent = await startBenchAgent(dir, SAMPLING_MS);
const pid = agent.child.pid as number;
let samples = 0;
let scrapes = 0;
let scrapeFailures = 0;
let rssMax = 0;
const clients = Array.from({ length: WATCHERS }, () => createAgentClient(agent.tcp, grpc.credentials.createInsecure()));
const streams = clients.map((c) => {
  const s = c.watchNode(create(WatchNodeRequestSchema, { intervalMs: SAMPLING_MS }));
  s.on("data", (m: WatchNodeResponse) => {
    if (m.item.case === "sample") samples++;
  });
  s.on("error", () => undefined);
  return s;
});
const scraper = setInterval(() => {
  fetch(`http://${agent.metrics}/metrics`)
    .then((r) => r.text())
    .then(() => scrapes++)
    .catch(() => scrapeFailures++);
}, SCRAPE_MS);
const memory = setInterval(() => {
  rssMax = Math.max(rssMax, memoryMB(pid).rss);
}, 500);

try {
  await new Promise((r) => setTimeout(r, warmupS * 1000));
  const cpu0 = cpuSeconds(pid);
  const samples0 = samples;
  const scrapes0 = scrapes;
  rssMax = 0;
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const elapsed = (performance.now() - t0) / 1000;
  const cpu = cpuSeconds(pid) - cpu0;
  const mem = memoryMB(pid);
  process.stdout.write(
    `${JSON.stringify({
      bench: "agent-overhead",
      host: "nvml-sim dgx-h100",
      gpus: 8,
      migDevices: 56,
      samplingMs: SAMPLING_MS,
      watchers: WATCHERS,
      scrapeEveryMs: SCRAPE_MS,
      seconds: round(elapsed, 1),
      cpuPercentOfCore: round((cpu / elapsed) * 100, 3),
      peakRssMB: round(mem.peak, 1),
      steadyRssMaxMB: round(rssMax, 1),
      samplesDelivered: samples - samples0,
      scrapes: scrapes - scrapes0,
      scrapeFailures,
      targets: { cpuPercentOfCore: 1, peakRssMB: 100 },
      dcgmExporterReported: { rssMB: "71–248", cpuPercentOfCore: "15–131" },
    })}\n`,
  );
} finally {
  clearInterval(scraper);
  clearInterval(memory);
  for (const s of streams) s.cancel();
  for (const c of clients) c.close();
  await agent.stop();
  cleanup(dir);
}
