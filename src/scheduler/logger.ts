// pino for tessera-scheduler: the agent's logger settings (JSON lines, pretty on a terminal,
// secrets redacted) under the scheduler's service name.
import pino, { type Logger } from "pino";
import { REDACTED_PATHS } from "../agent/logger.js";

export type { Logger } from "pino";

export interface SchedulerLoggerOptions {
  readonly level: string;
  readonly pretty?: boolean;
  readonly destination?: pino.DestinationStream;
}

export function createSchedulerLogger(options: SchedulerLoggerOptions): Logger {
  const pretty = options.pretty ?? (options.destination === undefined && process.stdout.isTTY === true);
  const base: pino.LoggerOptions = {
    level: options.level,
    base: { svc: "tessera-scheduler" },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
    redact: { paths: REDACTED_PATHS, censor: "[redacted]" },
    serializers: { err: pino.stdSerializers.err },
  };
  if (pretty) return pino({ ...base, transport: { target: "pino-pretty", options: { colorize: true } } });
  return options.destination ? pino(base, options.destination) : pino(base);
}
