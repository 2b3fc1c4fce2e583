// Why an allocation or release was refused. Each code maps to one gRPC status in src/rpc/status.ts.
import { TesseraError } from "../errors.js";

/** The device is leased by another workload. */
export class DeviceBusyError extends TesseraError {
  constructor(message: string) {
    super("TESSERA_DEVICE_BUSY", message);
  }
}

/** The workload already holds a different device (a workload holds one lease). */
export class WorkloadHoldsOtherError extends TesseraError {
  constructor(message: string) {
    super("TESSERA_WORKLOAD_HOLDS_OTHER", message);
  }
}

export class DeviceNotFoundError extends TesseraError {
  constructor(message: string) {
    super("TESSERA_DEVICE_NOT_FOUND", message);
  }
}

export class DeviceUnhealthyError extends TesseraError {
  constructor(message: string) {
    super("TESSERA_DEVICE_UNHEALTHY", message);
  }
}

/** No placement left for the profile, or its instance limit is reached. */
export class NoRoomError extends TesseraError {
  constructor(message: string) {
    super("TESSERA_NO_ROOM", message);
  }
}

/** The request needs another MIG mode (a whole GPU with MIG on, a new instance with MIG off) or a dynamic node. */
export class MigModeError extends TesseraError {
  constructor(message: string) {
    super("TESSERA_MIG_MODE", message);
  }
}

/** The same workload's allocation is still being carried out. */
export class AllocationInProgressError extends TesseraError {
  constructor(message: string) {
    super("TESSERA_ALLOCATION_IN_PROGRESS", message);
  }
}

/** A request field the domain rejects (e.g. a placement that is not legal for the profile). */
export class InvalidFieldError extends TesseraError {
  readonly field: string;

  constructor(field: string, message: string) {
    super("TESSERA_INVALID_ARGUMENT", `${field}: ${message}`);
    this.field = field;
  }
}
