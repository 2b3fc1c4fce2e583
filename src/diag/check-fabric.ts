// The RDMA fabric as the node sees it: expected ports present, up, at their rate (quick), and
// error counters that stay quiet over the window (standard). Verdicts are src/fabric's; this
// check turns them into a checklist line with what to do.
import type { FabricCollection, HealthReason, PortHealth, ReasonCode } from "../fabric/index.js";
import type { FabricWindow } from "./context.js";
import { type Finding, fail, fold, pass, warn } from "./findings.js";
import type { Check, Verdict } from "./types.js";

// A down port shows both a state and a physical-state reason: one sentence covers both.
const PORT_DOWN_FIX =
  "The port is down: check its cable and switch port (ibstat shows State and Physical state; Polling means no link partner); reseat or replace the cable or transceiver.";

const REASON_FIX: Readonly<Record<ReasonCode, string>> = {
  "state-not-active": PORT_DOWN_FIX,
  "phys-state-not-linkup": PORT_DOWN_FIX,
  unreadable: "The port's sysfs files could not be read: check that the mlx5 driver is loaded and healthy (dmesg).",
  "rate-below-expected":
    "The link trained below its expected rate: reseat the cable at both ends; replace it if it trains low again.",
  "width-below-expected":
    "The link trained with fewer lanes than expected: reseat the cable at both ends (usually resolves it); replace the cable if it persists.",
  "speed-below-expected":
    "The link trained at a lower speed than expected: check the cable and transceiver type and the switch port's configuration.",
  "link-layer-mismatch":
    "The port runs the wrong link layer (InfiniBand vs Ethernet): set the card's LINK_TYPE with mlxconfig and reboot.",
  "error-rate":
    "The link takes errors: inspect and replace the cable or transceiver, and check the switch port's error counters.",
  "link-downed": "The link went down and came back: inspect the cable and transceiver; check the switch port's log.",
  flapping: "The link keeps going down and up: replace the cable or transceiver; check the switch port.",
  "counter-saturated":
    "Error counters sit at their maximum, so rates cannot be measured: reset them (perfquery -R) and check again.",
  "no-uverbs": "The RDMA verbs device is missing: load ib_uverbs (modprobe ib_uverbs).",
  "no-umad": "The RDMA MAD device is missing: load ib_umad (modprobe ib_umad).",
  "pcie-downgraded": "The NIC's PCIe link is below its maximum: reseat the card at the next maintenance.",
};

const MISSING_FIX =
  "An expected RDMA port is missing: check that the card is seen on PCI (lspci), that mlx5_core loaded it (dmesg), and its firmware; reseat or replace the card.";
const TOO_FEW_FIX = "Too few ports are up at their rate: bring the ports listed above back (cable, switch port, card).";

/** Reasons that come from counters over time, not from one read. */
const COUNTER_CODES: ReadonlySet<ReasonCode> = new Set(["error-rate", "link-downed", "flapping", "counter-saturated"]);

function portFinding(p: PortHealth, reasons: readonly HealthReason[], status: "warn" | "fail"): Finding {
  const text = `${p.key}${p.role ? ` (${p.role})` : ""}: ${p.verdict}: ${reasons.map((r) => r.message).join("; ")}`;
  const fix = [...new Set(reasons.map((r) => REASON_FIX[r.code]))].join(" ");
  return status === "fail" ? fail(text, fix) : warn(text, fix);
}

function noFabric(c: FabricCollection): Verdict | undefined {
  if (c.reading.devices.length > 0 || c.health.problems.length > 0) return undefined;
  return {
    status: "skip",
    evidence: [`no RDMA devices under ${c.reading.sysfsRoot}/class/infiniband`],
    remediation: "",
  };
}

export const fabricPortsCheck: Check<FabricCollection> = {
  id: "fabric.ports",
  title: "RDMA ports present, up and at rate",
  level: "quick",
  reads: ["/sys/class/infiniband/*/ports/*/{state,phys_state,rate,link_layer}", "--fabric-expect"],
  gather: (ctx) => ctx.fabric(),
  verdict: fabricPortsVerdict,
};

export function fabricPortsVerdict(c: FabricCollection): Verdict {
  const none = noFabric(c);
  if (none) return none;
  const findings: Finding[] = [];
  for (const p of c.health.ports) {
    if (p.ignored || p.verdict === "healthy") continue;
    findings.push(portFinding(p, p.reasons, p.verdict === "down" ? "fail" : "warn"));
  }
  for (const problem of c.health.problems) {
    findings.push(fail(problem.message, problem.code === "expected-port-missing" ? MISSING_FIX : TOO_FEW_FIX));
  }
  const healthy = c.health.ports.filter((p) => !p.ignored && p.verdict === "healthy");
  findings.push(pass(`${healthy.length} of ${c.health.ports.length} ports healthy (${c.reading.sysfsRoot})`));
  return fold(findings);
}

export const fabricErrorRatesCheck: Check<FabricWindow> = {
  id: "fabric.error-rates",
  title: "RDMA error counters quiet over the window",
  level: "standard",
  windowed: true,
  reads: ["/sys/class/infiniband/*/ports/*/{counters,hw_counters}/* at the window's start and end"],
  gather: (ctx) => ctx.fabricWindow(),
  verdict: fabricErrorRatesVerdict,
};

export function fabricErrorRatesVerdict(w: FabricWindow): Verdict {
  const none = noFabric(w.end);
  if (none) return none;
  const findings: Finding[] = [];
  for (const p of w.end.health.ports) {
    if (p.ignored) continue;
    const reasons = p.reasons.filter((r) => COUNTER_CODES.has(r.code));
    if (reasons.length === 0) continue;
    findings.push(portFinding(p, reasons, reasons.some((r) => r.severity === "critical") ? "fail" : "warn"));
  }
  const seconds = Math.round((w.end.atMs - w.start.atMs) / 100) / 10;
  findings.push(pass(`${w.end.health.ports.length} ports read ${seconds} s apart`));
  return fold(findings);
}
