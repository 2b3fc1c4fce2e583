// tessera-scheduler's configuration: /etc/tessera/scheduler.yaml (path overridable). The same
// discipline as the agent's: every setting has a default, unknown keys and invalid values are
// rejected with the file, line and column, command-line flags override the file, and settings
// that only make sense together are checked together. The result is one typed SchedulerConfig.
import { readFile } from "node:fs/promises";
import { LineCounter, parseDocument, stringify } from "yaml";
import { z } from "zod";
import { isLoopbackHost, LOG_LEVELS, parseHostPort } from "../agent/config.js";
import { errorMessage, InputError } from "../errors.js";
import { formatYamlPath, locateYamlNode } from "../util/yaml-position.js";
import { type QuotaConfig, quotaConfigOf, quotaSectionSchema } from "./quota.js";

export const DEFAULT_SCHEDULER_CONFIG_PATH = "/etc/tessera/scheduler.yaml";

/**
 * Roles on the scheduler (from the client certificate, the local socket, or the development
 * listener): `node` registers agents, `viewer` reads (GetCluster, WatchCluster, Explain),
 * `tenant` also places and releases, `admin` does everything.
 */
export const SCHEDULER_ROLES = ["viewer", "tenant", "node", "admin"] as const;
export type SchedulerRole = (typeof SCHEDULER_ROLES)[number];

const roleRule = z
  .object({
    cn: z.string().min(1).optional(),
    dns: z.string().min(1).optional(),
    uri: z.string().min(1).optional(),
    role: z.enum(SCHEDULER_ROLES),
    /** tenant: the tenants this caller may place and release for (absent: any). */
    tenants: z.array(z.string().min(1)).min(1).optional(),
    /** node: the node ids this caller may register (absent: any). */
    nodes: z.array(z.string().min(1)).min(1).optional(),
  })
  .strict()
  .refine((r) => [r.cn, r.dns, r.uri].filter((v) => v !== undefined).length === 1, {
    message: "a rule names exactly one of cn, dns or uri",
  })
  .refine((r) => r.tenants === undefined || r.role === "tenant", {
    message: "tenants restricts a tenant rule only",
  })
  .refine((r) => r.nodes === undefined || r.role === "node", { message: "nodes restricts a node rule only" });

const hostPort = z.string().refine((v) => v === "" || parseHostPort(v) !== undefined, {
  message: "expected host:port (e.g. 127.0.0.1:7444, [::1]:7444)",
});

const ms = z.number().int().positive();

const schema = z
  .object({
    listen: z
      .object({
        tcp: hostPort.default(""),
        devInsecure: z.boolean().default(false),
        socket: z.string().default("/run/tessera/scheduler.sock"),
        socketMode: z
          .string()
          .regex(/^0?[0-7]{3}$/, "an octal mode such as 0660")
          .default("0660"),
      })
      .strict()
      .prefault({}),
    tls: z
      .object({ cert: z.string().default(""), key: z.string().default(""), clientCa: z.string().default("") })
      .strict()
      .prefault({}),
    auth: z
      .object({
        socketRole: z.enum(SCHEDULER_ROLES).default("admin"),
        devInsecureRole: z.enum(SCHEDULER_ROLES).default("admin"),
        rules: z.array(roleRule).default([]),
      })
      .strict()
      .prefault({}),
    agents: z
      .object({
        /** The scheduler's client certificate towards agents (their auth.rules map it to role scheduler). */
        tls: z
          .object({ ca: z.string().default(""), cert: z.string().default(""), key: z.string().default("") })
          .strict()
          .prefault({}),
        /** Plaintext to agents started with --dev-insecure: loopback addresses only. */
        insecure: z.boolean().default(false),
        callTimeoutMs: ms.default(30_000),
        /** Re-read each agent's node and lease table this often (besides after its MIG and lease events). */
        resyncIntervalMs: ms.default(10_000),
        reconnectMinMs: ms.default(200),
        reconnectMaxMs: ms.default(5_000),
      })
      .strict()
      .prefault({}),
    nodes: z
      .object({
        /** Registration lease when an agent asks for none. */
        leaseTtlMs: ms.default(15_000),
        minLeaseTtlMs: ms.default(1_000),
        maxLeaseTtlMs: ms.default(300_000),
        /** Place on hosts whose NVML is Tessera's simulator. */
        allowSimulated: z.boolean().default(false),
        /** How long a confirmed or in-doubt allocation outlives agent snapshots that do not show it. */
        overlayTtlMs: ms.default(30_000),
        /** How long a fatal XID keeps a GPU out of placement. */
        xidHoldMs: ms.default(600_000),
      })
      .strict()
      .prefault({}),
    placement: z
      .object({
        policy: z.enum(["fragmentation", "best-fit", "first-fit"]).default("fragmentation"),
        /**
         * After a start, Place waits this long for agents to re-register (they renew every
         * third of their lease) so that no workload's existing leases go unseen.
         */
        startupGraceMs: z.number().int().nonnegative().default(7_000),
      })
      .strict()
      .prefault({}),
    quotas: quotaSectionSchema.prefault({}),
    log: z
      .object({ level: z.enum(LOG_LEVELS).default("info") })
      .strict()
      .prefault({}),
    shutdown: z
      .object({ graceMs: ms.default(10_000) })
      .strict()
      .prefault({}),
  })
  .strict();

export type SchedulerConfigData = z.infer<typeof schema>;
export type SchedulerRoleRule = SchedulerConfigData["auth"]["rules"][number];

export interface SchedulerConfig extends SchedulerConfigData {
  /** `quotas` as the decision engine reads it. */
  readonly quotaConfig: QuotaConfig;
}

/** What the command line may override. */
export interface SchedulerOverrides {
  readonly listenTcp?: string;
  readonly devInsecure?: boolean;
  readonly socket?: string;
  readonly logLevel?: string;
  readonly allowSimulated?: boolean;
  readonly agentsInsecure?: boolean;
  readonly startupGraceMs?: number;
  readonly nodeLeaseTtlMs?: number;
}

function withQuotas(data: SchedulerConfigData): SchedulerConfig {
  return { ...data, quotaConfig: quotaConfigOf(data.quotas) };
}

/** Parses scheduler.yaml text (`file` only names it in messages). Throws InputError. */
export function parseSchedulerConfig(text: string, file: string): SchedulerConfig {
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
  return withQuotas(result.data);
}

export function defaultSchedulerConfig(): SchedulerConfig {
  return withQuotas(schema.parse({}));
}

/** Reads the config file; a missing file is fine only at the default path. */
export async function loadSchedulerConfig(
  path: string | undefined,
): Promise<{ config: SchedulerConfig; source: string }> {
  const file = path ?? DEFAULT_SCHEDULER_CONFIG_PATH;
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    if (path === undefined && (err as NodeJS.ErrnoException).code === "ENOENT")
      return { config: defaultSchedulerConfig(), source: `defaults (${file} does not exist)` };
    throw new InputError(`cannot read the scheduler config: ${errorMessage(err)}`, { file });
  }
  return { config: parseSchedulerConfig(text, file), source: file };
}

/** Applies command-line overrides and checks what only makes sense together. Throws InputError. */
export function finishSchedulerConfig(base: SchedulerConfig, o: SchedulerOverrides): SchedulerConfig {
  const { quotaConfig: _, ...data } = base;
  const c: SchedulerConfigData = structuredClone(data);
  if (o.listenTcp !== undefined) c.listen.tcp = o.listenTcp;
  if (o.devInsecure !== undefined) c.listen.devInsecure = o.devInsecure;
  if (o.socket !== undefined) c.listen.socket = o.socket;
  if (o.logLevel !== undefined) c.log.level = o.logLevel as SchedulerConfigData["log"]["level"];
  if (o.allowSimulated !== undefined) c.nodes.allowSimulated = o.allowSimulated;
  if (o.agentsInsecure !== undefined) c.agents.insecure = o.agentsInsecure;
  if (o.startupGraceMs !== undefined) c.placement.startupGraceMs = o.startupGraceMs;
  if (o.nodeLeaseTtlMs !== undefined) c.nodes.leaseTtlMs = o.nodeLeaseTtlMs;
  const again = schema.safeParse(c);
  if (!again.success) {
    const issue = again.error.issues[0];
    throw new InputError(
      `${formatYamlPath((issue?.path ?? []).filter((p): p is string | number => typeof p !== "symbol"))}: ${issue?.message}`,
    );
  }
  const cfg = again.data;
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
  const a = cfg.agents;
  if (!a.insecure && (a.tls.ca === "" || a.tls.cert === "" || a.tls.key === ""))
    throw new InputError(
      "agents.tls needs ca, cert and key: the scheduler reaches agents over mTLS with a certificate their auth.rules map to role scheduler (or, for development agents on loopback, set agents.insecure)",
    );
  if (a.reconnectMinMs > a.reconnectMaxMs)
    throw new InputError(`agents.reconnectMinMs (${a.reconnectMinMs}) exceeds agents.reconnectMaxMs`);
  const n = cfg.nodes;
  if (n.minLeaseTtlMs > n.maxLeaseTtlMs)
    throw new InputError(`nodes.minLeaseTtlMs (${n.minLeaseTtlMs}) exceeds nodes.maxLeaseTtlMs (${n.maxLeaseTtlMs})`);
  if (n.leaseTtlMs < n.minLeaseTtlMs || n.leaseTtlMs > n.maxLeaseTtlMs)
    throw new InputError(
      `nodes.leaseTtlMs (${n.leaseTtlMs}) must be within nodes.minLeaseTtlMs…maxLeaseTtlMs (${n.minLeaseTtlMs}…${n.maxLeaseTtlMs})`,
    );
  return withQuotas(cfg);
}

/** The effective config as YAML (`--print-config`). Nothing in it is secret: keys are paths. */
export function printSchedulerConfig(config: SchedulerConfig): string {
  const { quotaConfig: _, ...data } = config;
  return stringify(data);
}
