// The expected fabric of a host, from YAML (`tessera fabric --expect`, the
// agent's config). Parsed at the edge into ExpectedFabric and thresholds;
// errors name the file, line and field.
import { readFile } from "node:fs/promises";
import { LineCounter, parseDocument } from "yaml";
import { z } from "zod";
import { errorMessage, InputError } from "../errors.js";
import { formatYamlPath, locateYamlNode } from "../util/yaml-position.js";
import {
  type CounterThreshold,
  DEFAULT_THRESHOLDS,
  type ExpectedFabric,
  type HealthThresholds,
  mergeThresholds,
} from "./health.js";
import { IB_LANE_RATE_GBPS, IB_WIDTHS, type IbSpeed } from "./parse.js";

export interface FabricExpectations {
  expected: ExpectedFabric;
  thresholds: HealthThresholds;
}

const DURATION_UNITS_MS: Record<string, number> = { ms: 1, s: 1000, min: 60_000, m: 60_000, h: 3_600_000 };

/** `500ms`, `1s`, `10min` (or `10m`), `12h`. */
export function parseDurationMs(text: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)\s*(ms|s|min|m|h)$/.exec(text.trim());
  if (!m) return undefined;
  const ms = Number(m[1]) * (DURATION_UNITS_MS[m[2] as string] as number);
  return ms > 0 ? ms : undefined;
}

const duration = z.string().transform((s, ctx) => {
  const ms = parseDurationMs(s);
  if (ms === undefined) {
    ctx.addIssue({ code: "custom", message: `expected a duration like 1s, 10min or 12h, got "${s}"` });
    return z.NEVER;
  }
  return ms;
});
const linkLayer = z.enum(["InfiniBand", "Ethernet"]);
const speed = z.enum(Object.keys(IB_LANE_RATE_GBPS) as [IbSpeed, ...IbSpeed[]]);
const width = z
  .union([z.number().int(), z.string().regex(/^\d+X$/, 'expected a width like "4X"')])
  .transform((w, ctx) => {
    const lanes = typeof w === "number" ? w : Number(w.slice(0, -1));
    if (!(IB_WIDTHS as readonly number[]).includes(lanes)) {
      ctx.addIssue({ code: "custom", message: `width must be one of ${IB_WIDTHS.map((n) => `${n}X`).join(", ")}` });
      return z.NEVER;
    }
    return lanes;
  });
const deviceName = z.string().regex(/^[A-Za-z0-9_.-]+$/, "expected an RDMA device name like mlx5_0");

const schema = z
  .object({
    version: z.literal(1),
    ports: z
      .array(
        z
          .object({
            device: deviceName,
            port: z.number().int().positive().default(1),
            linkLayer: linkLayer.optional(),
            minRateGbps: z.number().positive().optional(),
            width: width.optional(),
            speed: speed.optional(),
            role: z.enum(["compute", "storage", "management"]).optional(),
          })
          .strict(),
      )
      .default([]),
    rules: z
      .array(
        z
          .object({
            linkLayer: linkLayer.optional(),
            minPorts: z.number().int().positive(),
            minRateGbps: z.number().positive().optional(),
          })
          .strict(),
      )
      .default([]),
    ignore: z.array(z.string().regex(/^[A-Za-z0-9_.-]+(\/\d+)?$/, "expected mlx5_7 or mlx5_7/1")).default([]),
    thresholds: z
      .object({
        counters: z
          .array(
            z
              .object({
                counter: z.string().regex(/^(hw_counters\/)?[A-Za-z0-9_]+$/),
                maxIncrements: z.number().nonnegative(),
                window: duration,
                severity: z.enum(["warning", "critical"]).default("warning"),
              })
              .strict(),
          )
          .default([]),
        disable: z.array(z.string()).default([]),
        flap: z.object({ minDownEvents: z.number().int().positive(), window: duration }).partial().strict().optional(),
      })
      .strict()
      .optional(),
  })
  .strict();

/** Parses expected-fabric YAML; `file` is only used in messages. Throws InputError. */
export function parseExpectedFabric(text: string, file: string): FabricExpectations {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter });
  const syntax = doc.errors[0];
  if (syntax) {
    const pos = syntax.linePos?.[0];
    // The pretty message repeats the position and quotes the line; the InputError carries the position.
    const message = (syntax.message.split("\n")[0] ?? "").replace(/ at line \d+, column \d+:?$/, "");
    throw new InputError(`YAML: ${message}`, { file, line: pos?.line, column: pos?.col });
  }
  const result = schema.safeParse(doc.toJS() ?? {});
  if (!result.success) {
    const issue = result.error.issues[0] as z.core.$ZodIssue;
    const path = issue.path.filter((p): p is string | number => typeof p !== "symbol");
    const unknownKey = issue.code === "unrecognized_keys" ? issue.keys[0] : undefined;
    const at = locateYamlNode(doc, path, unknownKey, lineCounter);
    const field = formatYamlPath(unknownKey === undefined ? path : [...path, unknownKey]) || "(document)";
    const message = unknownKey === undefined ? issue.message : "unknown field";
    throw new InputError(`${field}: ${message}`, { file, line: at?.line, column: at?.col });
  }
  const data = result.data;
  const seen = new Map<string, number>();
  data.ports.forEach((p, i) => {
    const key = `${p.device}/${p.port}`;
    const first = seen.get(key);
    if (first !== undefined) {
      const at = locateYamlNode(doc, ["ports", i], undefined, lineCounter);
      throw new InputError(`ports[${i}]: port ${key} is already listed at ports[${first}]`, {
        file,
        line: at?.line,
        column: at?.col,
      });
    }
    seen.set(key, i);
  });
  const t = data.thresholds;
  const counters: CounterThreshold[] = (t?.counters ?? []).map((c) => ({
    source: c.counter.startsWith("hw_counters/") ? "hw_counters" : "counters",
    counter: c.counter.replace(/^hw_counters\//, ""),
    maxIncrements: c.maxIncrements,
    windowMs: c.window,
    severity: c.severity,
  }));
  const flap = t?.flap ? { minDownEvents: t.flap.minDownEvents, windowMs: t.flap.window } : undefined;
  return {
    expected: { ports: data.ports, rules: data.rules, ignore: data.ignore },
    thresholds: mergeThresholds(DEFAULT_THRESHOLDS, {
      counters,
      disable: t?.disable,
      flap: flap && Object.fromEntries(Object.entries(flap).filter(([, v]) => v !== undefined)),
    }),
  };
}

/** Reads and parses an expected-fabric file. Throws InputError. */
export async function loadExpectedFabric(path: string): Promise<FabricExpectations> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    throw new InputError(`cannot read expected-fabric file: ${errorMessage(err)}`, { file: path });
  }
  return parseExpectedFabric(text, path);
}
