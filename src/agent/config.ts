// tessera-agent's configuration: /etc/tessera/agent.yaml (path overridable). Every setting has a
// default; unknown keys and invalid values are rejected with the file, line and column; command-line
// flags override the file. The result is one typed, frozen AgentConfig.
import { readFile } from "node:fs/promises";
import { isIP } from "node:net";
import { LineCounter, parseDocument, stringify } from "yaml";
import { z } from "zod";
import { errorMessage, InputError } from "../errors.js";
import { formatYamlPath, locateYamlNode } from "../util/yaml-position.js";

export const DEFAULT_CONFIG_PATH = "/etc/tessera/agent.yaml";
export const ROLES = ["viewer", "scheduler", "operator", "admin"] as const;
export type Role = (typeof ROLES)[number];
export const LOG_LEVELS = ["trace", "debug", "info", "warn", "error", "fatal", "silent"] as const;

const roleRule = z
  .object({
    cn: z.string().min(1).optional(),
    dns: z.string().min(1).optional(),
    uri: z.string().min(1).optional(),
    role: z.enum(ROLES),
  })
  .strict()
  .refine((r) => [r.cn, r.dns, r.uri].filter((v) => v !== undefined).length === 1, {
    message: "a rule names exactly one of cn, dns or uri",
  });

const hostPort = z.string().refine((v) => v === "" || parseHostPort(v) !== undefined, {
  message: "expected host:port (e.g. 127.0.0.1:7443, [::1]:7443)",
});

const positiveMs = z.number().int().positive();

const schema = z
  .object({
    nodeId: z.string().default(""),
    labels: z.record(z.string(), z.string()).default({}),
    nvml: z
      .object({
        library: z.string().default(""),
        readOnly: z.boolean().default(false),
        callTimeoutMs: positiveMs.default(30_000),
      })
      .strict()
      .prefault({}),
    sampling: z
      .object({
        intervalMs: z.number().int().min(100).max(3_600_000).default(1000),
        timeoutMs: positiveMs.default(5000),
      })
      .strict()
      .prefault({}),
    events: z
      .object({ history: z.number().int().min(16).max(1_000_000).default(10_000) })
      .strict()
      .prefault({}),
    watch: z
      .object({
        maxWatchers: z.number().int().min(1).default(1024),
        queuedSamples: z.number().int().min(1).max(64).default(1),
      })
      .strict()
      .prefault({}),
    listen: z
      .object({
        socket: z.string().default("/run/tessera/agent.sock"),
        socketMode: z
          .string()
          .regex(/^0?[0-7]{3}$/, "an octal mode such as 0660")
          .default("0660"),
        socketGroup: z.string().default("tessera"),
        tcp: hostPort.default(""),
        devInsecure: z.boolean().default(false),
      })
      .strict()
      .prefault({}),
    tls: z
      .object({ cert: z.string().default(""), key: z.string().default(""), clientCa: z.string().default("") })
      .strict()
      .prefault({}),
    auth: z
      .object({
        socketRole: z.enum(ROLES).default("admin"),
        devInsecureRole: z.enum(ROLES).default("admin"),
        rules: z.array(roleRule).default([]),
      })
      .strict()
      .prefault({}),
    metrics: z
      .object({
        listen: hostPort.default("0.0.0.0:9402"),
        hostnameLabel: z.enum(["Hostname", "hostname", ""]).default("Hostname"),
      })
      .strict()
      .prefault({}),
    state: z
      .object({ dir: z.string().min(1).default("/var/lib/tessera") })
      .strict()
      .prefault({}),
    mig: z
      .object({ dynamic: z.boolean().default(false) })
      .strict()
      .prefault({}),
    fabric: z
      .object({
        enabled: z.boolean().default(true),
        sysfsRoot: z.string().min(1).default("/sys"),
        procRoot: z.string().min(1).default("/proc"),
        expect: z.string().default(""),
        intervalMs: z.number().int().min(1000).default(30_000),
      })
      .strict()
      .prefault({}),
    health: z
      .object({
        xidHoldMs: positiveMs.default(3_600_000),
        temperatureMarginC: z.number().min(0).max(50).default(5),
      })
      .strict()
      .prefault({}),
    log: z
      .object({ level: z.enum(LOG_LEVELS).default("info") })
      .strict()
      .prefault({}),
    shutdown: z
      .object({ graceMs: positiveMs.default(30_000) })
      .strict()
      .prefault({}),
    /** The scheduler this agent registers with (RegisterNode at start, then renewals); none by default. */
    scheduler: z
      .object({
        /** host:port (mTLS, or plaintext with `insecure`) or unix:///path; "" registers nowhere. */
        address: z
          .string()
          .refine((v) => v === "" || v.startsWith("unix:///") || parseHostPort(v) !== undefined, {
            message: "expected host:port or unix:///path",
          })
          .default(""),
        /** Where the scheduler reaches this agent; default: listen.tcp as bound (a wildcard host: this host's name). */
        advertise: z
          .string()
          .refine((v) => v === "" || v.startsWith("unix:///") || parseHostPort(v) !== undefined, {
            message: "expected host:port or unix:///path",
          })
          .default(""),
        /** The registration lease asked for; 0: the scheduler's default. */
        leaseTtlMs: z.number().int().nonnegative().default(0),
        /** Plaintext to a development scheduler on loopback (its --dev-insecure listener). */
        insecure: z.boolean().default(false),
        /** This agent's client certificate towards the scheduler (its auth.rules map it to role node). */
        tls: z
          .object({ ca: z.string().default(""), cert: z.string().default(""), key: z.string().default("") })
          .strict()
          .prefault({}),
      })
      .strict()
      .prefault({}),
  })
  .strict();

export type AgentConfig = z.infer<typeof schema>;
export type RoleRule = AgentConfig["auth"]["rules"][number];

/** What the command line may override. */
export interface ConfigOverrides {
  readonly listenTcp?: string;
  readonly socket?: string;
  readonly metricsListen?: string;
  readonly devInsecure?: boolean;
  readonly stateDir?: string;
  readonly logLevel?: string;
  readonly readOnly?: boolean;
  readonly library?: string;
  readonly fabricSysfsRoot?: string;
  readonly fabricProcRoot?: string;
  readonly dynamicMig?: boolean;
  readonly samplingIntervalMs?: number;
  readonly schedulerAddress?: string;
  readonly schedulerInsecure?: boolean;
  readonly advertise?: string;
  readonly nodeId?: string;
}

export function parseHostPort(value: string): { host: string; port: number } | undefined {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(value);
  if (!m) return undefined;
  const port = Number(m[3]);
  if (port > 65535) return undefined;
  return { host: (m[1] ?? m[2]) as string, port };
}

export function isLoopbackHost(host: string): boolean {
  if (host === "localhost") return true;
  if (isIP(host) === 4) return host.startsWith("127.");
  if (isIP(host) === 6) return host === "::1";
  return false;
}

/** Parses agent.yaml text (`file` only names it in messages). Throws InputError. */
export function parseAgentConfig(text: string, file: string): AgentConfig {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, uniqueKeys: true });
  const syntax = doc.errors[0];
  if (syntax) {
    const pos = syntax.linePos?.[0];
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
    const message = unknownKey === undefined ? issue.message : "unknown setting";
    throw new InputError(`${field}: ${message}`, { file, line: at?.line, column: at?.col });
  }
  return result.data;
}

/** The defaults, as an empty file gives them. */
export function defaultAgentConfig(): AgentConfig {
  return schema.parse({});
}

/**
 * Reads the config file. A missing file is fine only at the default path (every setting has a
 * default); a path someone named must exist.
 */
export async function loadAgentConfig(path: string | undefined): Promise<{ config: AgentConfig; source: string }> {
  const file = path ?? DEFAULT_CONFIG_PATH;
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    if (path === undefined && (err as NodeJS.ErrnoException).code === "ENOENT")
      return { config: defaultAgentConfig(), source: `defaults (${file} does not exist)` };
    throw new InputError(`cannot read the agent config: ${errorMessage(err)}`, { file });
  }
  return { config: parseAgentConfig(text, file), source: file };
}

/** Applies command-line overrides and checks what only makes sense together. Throws InputError. */
export function finishConfig(base: AgentConfig, o: ConfigOverrides): AgentConfig {
  const c: AgentConfig = structuredClone(base);
  if (o.listenTcp !== undefined) c.listen.tcp = o.listenTcp;
  if (o.socket !== undefined) c.listen.socket = o.socket;
  if (o.metricsListen !== undefined) c.metrics.listen = o.metricsListen;
  if (o.devInsecure !== undefined) c.listen.devInsecure = o.devInsecure;
  if (o.stateDir !== undefined) c.state.dir = o.stateDir;
  if (o.logLevel !== undefined) c.log.level = o.logLevel as AgentConfig["log"]["level"];
  if (o.readOnly !== undefined) c.nvml.readOnly = o.readOnly;
  if (o.library !== undefined) c.nvml.library = o.library;
  if (o.fabricSysfsRoot !== undefined) c.fabric.sysfsRoot = o.fabricSysfsRoot;
  if (o.fabricProcRoot !== undefined) c.fabric.procRoot = o.fabricProcRoot;
  if (o.dynamicMig !== undefined) c.mig.dynamic = o.dynamicMig;
  if (o.samplingIntervalMs !== undefined) c.sampling.intervalMs = o.samplingIntervalMs;
  if (o.schedulerAddress !== undefined) c.scheduler.address = o.schedulerAddress;
  if (o.schedulerInsecure !== undefined) c.scheduler.insecure = o.schedulerInsecure;
  if (o.advertise !== undefined) c.scheduler.advertise = o.advertise;
  if (o.nodeId !== undefined) c.nodeId = o.nodeId;
  // Re-validate: flags are input too.
  const again = schema.safeParse(c);
  if (!again.success) {
    const issue = again.error.issues[0];
    throw new InputError(
      `${formatYamlPath((issue?.path ?? []).filter((p): p is string | number => typeof p !== "symbol"))}: ${issue?.message}`,
    );
  }
  const cfg = again.data;
  if (!(LOG_LEVELS as readonly string[]).includes(cfg.log.level))
    throw new InputError(`log.level: expected one of ${LOG_LEVELS.join(", ")}`);
  if (cfg.listen.tcp !== "") {
    const hp = parseHostPort(cfg.listen.tcp) as { host: string; port: number };
    if (cfg.listen.devInsecure) {
      if (!isLoopbackHost(hp.host))
        throw new InputError(
          `listen.devInsecure (--dev-insecure) serves plaintext gRPC and needs a loopback listen.tcp (127.0.0.1, [::1] or localhost), not ${cfg.listen.tcp}`,
        );
    } else if (cfg.tls.cert === "" || cfg.tls.key === "" || cfg.tls.clientCa === "") {
      throw new InputError(
        `listen.tcp (${cfg.listen.tcp}) needs mTLS: set tls.cert, tls.key and tls.clientCa (or, on loopback for development only, listen.devInsecure)`,
      );
    }
  } else if (cfg.listen.devInsecure) {
    throw new InputError("listen.devInsecure needs listen.tcp (a loopback host:port)");
  }
  if (cfg.listen.tcp === "" && cfg.listen.socket === "")
    throw new InputError("nothing to listen on: set listen.socket, listen.tcp, or both");
  const s = cfg.scheduler;
  if (s.address !== "" && !s.address.startsWith("unix:")) {
    const hp = parseHostPort(s.address) as { host: string; port: number };
    if (s.insecure) {
      if (!isLoopbackHost(hp.host))
        throw new InputError(
          `scheduler.insecure (--scheduler-insecure) registers in plaintext and needs a loopback scheduler.address, not ${s.address}`,
        );
    } else if (s.tls.ca === "" || s.tls.cert === "" || s.tls.key === "") {
      throw new InputError(
        `scheduler.address (${s.address}) needs mTLS: set scheduler.tls.ca, cert and key (or, for a development scheduler on loopback, scheduler.insecure)`,
      );
    }
  }
  if (s.address !== "" && s.advertise === "" && cfg.listen.tcp === "" && !s.address.startsWith("unix:"))
    throw new InputError(
      "scheduler.address is set but the scheduler cannot reach this agent: set listen.tcp (or scheduler.advertise)",
    );
  return cfg;
}

/** The effective config as YAML (`--print-config`). Nothing in it is secret: TLS keys are paths. */
export function printConfig(config: AgentConfig): string {
  return stringify(config);
}
