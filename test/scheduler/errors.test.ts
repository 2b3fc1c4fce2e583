// The scheduler's errors as gRPC status codes (src/rpc/status.ts), with the Tessera code in the trailer.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { status } from "@grpc/grpc-js";
import { toServiceError } from "../../src/rpc/status.js";
import { AgentUnavailableError } from "../../src/scheduler/agent-link.js";
import { PermissionDeniedError } from "../../src/scheduler/auth.js";
import {
  AgentTimeoutError,
  AllocationFailedError,
  NoCapacityError,
  WorkloadConflictError,
  WorkloadSizeConflictError,
} from "../../src/scheduler/decisions.js";
import { AgentRefusedError } from "../../src/scheduler/in-process-fleet.js";
import { QuotaExceededError } from "../../src/scheduler/quota.js";
import { SchedulerNotReadyError } from "../../src/scheduler/service.js";

describe("scheduler error mapping", () => {
  const cases: [Error & { code: string }, status][] = [
    [new NoCapacityError("no GPU can take 7g.80gb: 8 no-free-placement", {}), status.RESOURCE_EXHAUSTED],
    [new QuotaExceededError("t", "computeSlices", 7, 6, 2), status.RESOURCE_EXHAUSTED],
    [new AllocationFailedError("w", "the agent did not allocate", [], undefined), status.ABORTED],
    [new WorkloadConflictError("w", "a", "b"), status.ALREADY_EXISTS],
    [new WorkloadSizeConflictError("w", 1, 2), status.ALREADY_EXISTS],
    [new AgentTimeoutError("Release", "n1", 30_000), status.UNAVAILABLE],
    [new AgentUnavailableError("n1", "no link"), status.UNAVAILABLE],
    [new AgentRefusedError("INSUFFICIENT_RESOURCES"), status.FAILED_PRECONDITION],
    [new PermissionDeniedError("no"), status.PERMISSION_DENIED],
    [new SchedulerNotReadyError("rebuilding"), status.UNAVAILABLE],
  ];
  for (const [err, code] of cases) {
    it(`${err.code} → ${status[code]}`, () => {
      const se = toServiceError(err);
      assert.equal(se.code, code);
      assert.equal(se.details, err.message);
      assert.equal(se.metadata?.get("tessera-error-code")[0], err.code);
    });
  }
});
