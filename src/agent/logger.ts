// pino for the daemon: JSON lines on stdout for journald, pretty when stdout is a terminal, secrets
// redacted wherever they appear in log fields.
import pino, { type Logger } from "pino";

export type { Logger } from "pino";

/** Field paths that may carry secrets; pino replaces their values. */
export const REDACTED_PATHS = [
  "key",
  "*.key",
  "privateKey",
  "*.privateKey",
  "private_key",
  "*.private_key",
  "password",
  "*.password",
  "token",
  "*.token",
  "authorization",
  "*.authorization",
  "metadata.authorization",
];

export interface LoggerOptions {
  readonly level: string;
  /** Pretty output (pino-pretty); defaults to whether stdout is a terminal. */
  readonly pretty?: boolean;
  /** Where JSON lines go (tests); default stdout. */
  readonly destination?: pino.DestinationStream;
}

export function createLogger(options: LoggerOptions): Logger {
  const pretty = options.pretty ?? (options.destination === undefined && process.stdout.isTTY === true);
  const base: pino.LoggerOptions = {
    level: options.level,
    base: { svc: "tessera-agent" }, // journald records _PID and _HOSTNAME itself
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
    redact: { paths: REDACTED_PATHS, censor: "[redacted]" },
    serializers: { err: pino.stdSerializers.err },
  };
  if (pretty) return pino({ ...base, transport: { target: "pino-pretty", options: { colorize: true } } });
  return options.destination ? pino(base, options.destination) : pino(base);
}
