import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { status } from "@grpc/grpc-js";
import { TesseraError } from "../../src/errors.js";
import { DeviceBusyError, NoRoomError } from "../../src/ledger/errors.js";
import { NvmlError } from "../../src/nvml/index.js";
import { certificateNames, type RoleRule, roleAllows, roleFor } from "../../src/rpc/server-auth.js";
import { statusForCode, toServiceError } from "../../src/rpc/status.js";
import { RequestFieldError } from "../../src/rpc/validate.js";

describe("status mapping", () => {
  const cases: [unknown, status][] = [
    [new RequestFieldError("workload_id", "must not be empty"), status.INVALID_ARGUMENT],
    [new DeviceBusyError("busy"), status.FAILED_PRECONDITION],
    [new NoRoomError("full"), status.RESOURCE_EXHAUSTED],
    [new NvmlError(19, "nvmlGpuInstanceDestroy"), status.FAILED_PRECONDITION], // IN_USE
    [new NvmlError(23, "nvmlDeviceCreateGpuInstance"), status.RESOURCE_EXHAUSTED], // INSUFFICIENT_RESOURCES
    [new NvmlError(6, "nvmlDeviceGetHandleByUUID"), status.NOT_FOUND],
    [new TesseraError("TESSERA_READ_ONLY", "ro"), status.FAILED_PRECONDITION],
    [new TesseraError("TESSERA_NVML_TIMEOUT", "hung"), status.UNAVAILABLE],
    [new TesseraError("TESSERA_MIG_BUSY", "busy"), status.FAILED_PRECONDITION],
    [new TesseraError("TESSERA_SOMETHING_NEW", "?"), status.INTERNAL],
    [new Error("plain"), status.INTERNAL],
  ];
  for (const [err, code] of cases) {
    it(`${(err as { code?: string }).code ?? "a plain Error"} → ${status[code]}`, () => {
      const se = toServiceError(err);
      assert.equal(se.code, code);
      assert.equal(se.details, (err as Error).message);
      assert.equal(se.metadata?.get("tessera-error-code")[0], (err as { code?: string }).code ?? "TESSERA_INTERNAL");
    });
  }
  it("maps every NVML code it lists from the NVML table's names", () => {
    assert.equal(statusForCode("TESSERA_NVML_GPU_IS_LOST"), status.FAILED_PRECONDITION);
  });
});

describe("roles", () => {
  const rules: RoleRule[] = [
    { cn: "sched", role: "scheduler" },
    { dns: "ops.example.com", role: "operator" },
    { uri: "spiffe://tessera/admin", role: "admin" },
  ];
  it("takes the first rule that matches the CN or a SAN", () => {
    assert.equal(roleFor({ cn: ["sched"], dns: [], uri: [] }, rules), "scheduler");
    assert.equal(roleFor({ cn: ["x"], dns: ["ops.example.com"], uri: [] }, rules), "operator");
    assert.equal(roleFor({ cn: [], dns: [], uri: ["spiffe://tessera/admin"] }, rules), "admin");
    assert.equal(roleFor({ cn: ["stranger"], dns: [], uri: [] }, rules), undefined);
  });
  it("reads CN and SANs from a peer certificate", () => {
    const names = certificateNames({
      subject: { CN: "sched" },
      subjectaltname: "DNS:a.example, URI:spiffe://x/y, IP Address:127.0.0.1",
    } as never);
    assert.deepEqual(names, { cn: ["sched"], dns: ["a.example"], uri: ["spiffe://x/y"] });
  });
  it("grants viewers reads, schedulers leases, operators MIG and diagnostics, admins everything", () => {
    const table: [Parameters<typeof roleAllows>[0], Parameters<typeof roleAllows>[1], boolean][] = [
      ["viewer", "read", true],
      ["viewer", "leases", false],
      ["scheduler", "leases", true],
      ["scheduler", "mig", false],
      ["operator", "mig", true],
      ["operator", "diagnostics", true],
      ["operator", "leases", false],
      ["admin", "leases", true],
      ["admin", "mig", true],
    ];
    for (const [role, permission, allowed] of table)
      assert.equal(roleAllows(role, permission), allowed, `${role} ${permission}`);
  });
});
