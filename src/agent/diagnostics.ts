// RunDiagnostics: the checks of `tessera diag`, run inside the agent. NVML facts come from a probe
// host child process (a hung NVML call cannot stall the agent or the run), leases from the ledger,
// XIDs from the agent's own event log, the fabric from the configured sysfs root.
import { create } from "@bufbuild/protobuf";
import type { ServerWritableStream } from "@grpc/grpc-js";
import type { CheckResult, CheckStatus, DiagnosticSources, LeaseRecord, XidObservation } from "../diag/index.js";
import { probeHostNvmlSource, runDiagnostics } from "../diag/index.js";
import type { FabricExpectations } from "../fabric/index.js";
import {
  CheckResultSchema,
  CheckStatus as CheckStatusProto,
  DiagnosticLevel,
  DiagnosticsSummarySchema,
  type RunDiagnosticsRequest,
  type RunDiagnosticsResponse,
  RunDiagnosticsResponseSchema,
} from "../gen/tessera/v1/agent_pb.js";
import type { AgentEvent, EventLog } from "../telemetry/event-log.js";

export interface DiagnosticsDeps {
  /** The NVML library the agent uses ("" or undefined: the system search). */
  readonly libraryPath: string | undefined;
  readonly procRoot: string;
  readonly fabric?: { sysfsRoot: string; procRoot: string; expectations?: FabricExpectations };
  readonly leases: () => readonly LeaseRecord[];
  readonly events: EventLog;
}

const STATUS: Record<CheckStatus, CheckStatusProto> = {
  pass: CheckStatusProto.PASS,
  warn: CheckStatusProto.WARN,
  fail: CheckStatusProto.FAIL,
  skip: CheckStatusProto.SKIP,
};

export function checkResultProto(r: CheckResult) {
  return create(CheckResultSchema, {
    id: r.id,
    title: r.title,
    status: STATUS[r.status],
    evidence: [...r.evidence],
    remediation: r.remediation,
    durationMs: r.durationMs,
    timedOut: r.timedOut,
  });
}

/** XIDs the agent received from NVML and still holds in its event log. */
export function xidObservations(events: EventLog): XidObservation[] {
  const out: XidObservation[] = [];
  for (const e of events.after(0).events as AgentEvent[]) {
    if (e.detail.type !== "xid") continue;
    out.push({
      code: e.detail.code,
      ...(e.gpuIndex === undefined ? {} : { gpuIndex: e.gpuIndex }),
      ...(e.detail.gpuInstanceId === undefined ? {} : { gpuInstanceId: e.detail.gpuInstanceId }),
      atMs: e.atMs,
      source: "NVML event",
    });
  }
  return out;
}

/** Streams each check's result as it finishes, then the summary. Rejects only on bad options or transport errors. */
export async function serveDiagnostics(
  deps: DiagnosticsDeps,
  call: ServerWritableStream<RunDiagnosticsRequest, RunDiagnosticsResponse>,
): Promise<void> {
  const nvml = probeHostNvmlSource(deps.libraryPath ? { libraryPath: deps.libraryPath } : {});
  const cancelled = new AbortController();
  call.on("cancelled", () => cancelled.abort());
  try {
    const sources: DiagnosticSources = {
      nvml,
      kernelLog: { kind: "auto" },
      procRoot: deps.procRoot,
      ...(deps.fabric ? { fabric: deps.fabric } : {}),
      leases: deps.leases,
      xidHistory: () => xidObservations(deps.events),
    };
    const report = await runDiagnostics(sources, {
      level: call.request.level === DiagnosticLevel.STANDARD ? "standard" : "quick",
      ...(call.request.windowMs > 0 ? { windowMs: call.request.windowMs } : {}),
      signal: cancelled.signal,
      onResult: (r) => {
        if (!cancelled.signal.aborted)
          call.write(create(RunDiagnosticsResponseSchema, { item: { case: "result", value: checkResultProto(r) } }));
      },
    });
    if (cancelled.signal.aborted) return;
    const s = report.summary;
    call.write(
      create(RunDiagnosticsResponseSchema, {
        item: {
          case: "summary",
          value: create(DiagnosticsSummarySchema, {
            passed: s.passed,
            warned: s.warned,
            failed: s.failed,
            skipped: s.skipped,
            exitCode: s.exitCode,
          }),
        },
      }),
    );
    call.end();
  } finally {
    await nvml.close();
  }
}
