/**
 * Base of every error Tessera throws on purpose. `code` is stable
 * (`TESSERA_…`) so callers and the gRPC layer can map it without parsing
 * messages.
 */
export class TesseraError extends Error {
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** Input that a person wrote (config, spec, flags) is invalid; names where. */
export class InputError extends TesseraError {
  readonly file: string | undefined;
  readonly line: number | undefined;
  readonly column: number | undefined;

  constructor(message: string, where: { file?: string; line?: number; column?: number } = {}) {
    const at = where.file
      ? `${where.file}${where.line ? `:${where.line}${where.column ? `:${where.column}` : ""}` : ""}: `
      : "";
    super("TESSERA_INVALID_INPUT", `${at}${message}`);
    this.file = where.file;
    this.line = where.line;
    this.column = where.column;
  }
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
