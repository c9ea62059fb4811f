// Incidents: what HQ pages a person about, derived from the probes' health (docs/alerting.md). One
// incident per root cause, its dependent areas inside: a pulled cable is one "link down" with LAN,
// DHCP, DNS, WAN and PHONE listed in it, not six alerts. The dependency order is UPSTREAM below; a
// probe HQ cannot hear is its own kind ("probe unreachable", with the last health it sent); the
// same WAN target failing at several sites at once is one correlated incident.
// Quiet by design: a new incident waits `settle_ms` before it is announced (the burst of a replayed
// outbox, or a downstream area that failed a moment before its cause, folds into one), it resolves
// only after `resolve_after_ms` without a failing member, the same root failing again within
// `flap_window_ms` re-opens the same incident, and a site in a maintenance window is not announced.
// Pure and synchronous like Fleet: the caller feeds probe snapshots and the clock; `notify` events
// say what to announce. Never throws out of observe()/tick() for any payload Fleet accepted.
import { EventEmitter } from "node:events";
import { randomBytes } from "node:crypto";
import type { HealthPayload } from "../../../contract/src/payloads.ts";
import type { CheckHistory, ResultPoint } from "../fleet.ts";

/** The incident engine's storage: a small upsert/read interface any backend can implement. */
export interface IncidentStore {
  /** Inserts or replaces the incident with this id. */
  put(incident: Incident): void;
  get(id: string): Incident | undefined;
  /** Open incidents first (oldest first), then resolved ones newest first, at most `limit`. */
  list(opts?: { open?: boolean; limit?: number }): Incident[];
}

/** The areas of one probe's panel that incidents are about (the uplink is HQ's own view). */
export const PROBE_AREAS = ["link", "lan", "dhcp", "dns", "wan", "phone"] as const;
export type ProbeArea = (typeof PROBE_AREAS)[number];
/** A member of an incident: an area of a probe, or its uplink to HQ. */
export type MemberArea = ProbeArea | "uplink";

/**
 * What each area needs working (docs/alerting.md, "Dependency order"): LINK → LAN → DHCP/DNS →
 * WAN → PHONE. DHCP and DNS are siblings: a dead resolver does not explain a missing lease.
 */
export const UPSTREAM: Readonly<Record<ProbeArea, readonly ProbeArea[]>> = {
  link: [],
  lan: ["link"],
  dhcp: ["lan", "link"],
  dns: ["lan", "link"],
  wan: ["dhcp", "dns", "lan", "link"],
  phone: ["wan", "dhcp", "dns", "lan", "link"],
};

export type IncidentKind =
  | "link_down"
  | "lan_down"
  | "dhcp_failing"
  | "dns_failing"
  | "wan_down"
  | "phone_failing"
  | "probe_unreachable"
  | "wan_target_down";

const KIND_OF_AREA: Record<ProbeArea, IncidentKind> = {
  link: "link_down",
  lan: "lan_down",
  dhcp: "dhcp_failing",
  dns: "dns_failing",
  wan: "wan_down",
  phone: "phone_failing",
};

/** How an incident kind reads in a notification. */
export const KIND_TITLE: Readonly<Record<IncidentKind, string>> = {
  link_down: "link down",
  lan_down: "LAN down",
  dhcp_failing: "DHCP failing",
  dns_failing: "DNS failing",
  wan_down: "WAN down",
  phone_failing: "phone failing",
  probe_unreachable: "probe unreachable",
  wan_target_down: "WAN target down at several sites",
};

/** One area of one probe inside an incident. */
export interface IncidentMember {
  key: string;
  site: string;
  probe: string;
  area: MemberArea;
  /** HQ clock (ms) when HQ learnt it failed. */
  since: number;
  /** The probe's own `since` of the area (its clock), when it said one. */
  probe_since: string | null;
  /** HQ clock when it stopped failing; null while it fails. */
  recovered_at: number | null;
  reason: string;
}

/** The first failing result of a member: what a technician reads first. */
export interface Evidence {
  key: string;
  area: MemberArea;
  check: string | null;
  kind: string | null;
  target: string | null;
  status: string | null;
  code: string | null;
  message: string;
  result_id: string | null;
  started_at: string | null;
}

/** One incident (times are HQ's clock, ms since epoch). */
export interface Incident {
  id: string;
  kind: IncidentKind;
  title: string;
  /** The root cause's area (`uplink` for a probe HQ cannot hear). */
  root_area: MemberArea;
  /** The site and probe of the root cause (the first one, for a correlated incident). */
  site: string;
  probe: string;
  sites: string[];
  probes: string[];
  /** Failing WAN targets shared by the sites of a correlated incident (else the root's own). */
  targets: string[];
  members: IncidentMember[];
  evidence: Evidence[];
  /** For `probe_unreachable`: the last health the probe sent before HQ lost it. */
  last_health: HealthPayload | null;
  opened_at: number;
  /** When it was (re-)opened last; the settle time runs from here. */
  reopened_at: number;
  reopened: number;
  /** When the firing notification went out; null while it settles (or is in maintenance). */
  notified_at: number | null;
  acknowledged_at: number | null;
  acknowledged_by: string | null;
  /** Since when no member fails (it resolves resolve_after_ms later). */
  resolving_since: number | null;
  resolved_at: number | null;
  /** True while every site of it is in a maintenance window. */
  in_maintenance: boolean;
  updated_at: number;
}

/** A maintenance window of one site (HQ clock, ms). */
export interface MaintenanceWindow {
  id: string;
  site: string;
  from: number;
  until: number;
  reason: string;
  by: string;
}

/** What a probe looks like to the engine (a subset of Fleet's ProbeDetail). */
export interface ProbeSnapshot {
  key: string;
  site: string;
  probe: string;
  state: "online" | "offline" | "unknown";
  health: HealthPayload | null;
  checks: readonly CheckHistory[];
}

/** Timing of the engine (hq-config.ts `alerts`). */
export interface IncidentSettings {
  unreachableAfterMs: number;
  settleMs: number;
  resolveAfterMs: number;
  flapWindowMs: number;
  correlateWindowMs: number;
}

export const DEFAULT_INCIDENT_SETTINGS: IncidentSettings = {
  unreachableAfterMs: 60_000,
  settleMs: 2_000,
  resolveAfterMs: 30_000,
  flapWindowMs: 600_000,
  correlateWindowMs: 300_000,
};

/** What to announce: `firing` once an incident settled (again after a re-open), `resolved` once. */
export interface IncidentNotice {
  status: "firing" | "resolved";
  incident: Incident;
}

interface ProbeRecord {
  snap: ProbeSnapshot;
  unreachableSince: number | null;
}

const memberKey = (key: string, area: MemberArea): string => `${key}#${area}`;
const rank = (a: MemberArea): number => (a === "uplink" ? -1 : PROBE_AREAS.indexOf(a));

/** Events: `notify` (IncidentNotice), `change` (Incident) after every change of an incident. */
export class IncidentEngine extends EventEmitter {
  readonly #store: IncidentStore;
  readonly #s: IncidentSettings;
  readonly #probes = new Map<string, ProbeRecord>();
  readonly #open = new Map<string, Incident>();
  /** Recently resolved incidents by `key#root_area`, for flapping. */
  readonly #recent = new Map<string, Incident>();
  readonly #memberOf = new Map<string, string>();
  readonly #maintenance = new Map<string, MaintenanceWindow>();
  #brokerConnected = true;

  constructor(store: IncidentStore, settings: Partial<IncidentSettings> = {}) {
    super();
    this.#store = store;
    this.#s = { ...DEFAULT_INCIDENT_SETTINGS, ...settings };
    // A store that outlived an HQ restart: its open incidents go on (times, ack, notified) rather
    // than being opened and notified again when the fleet's state comes back.
    for (const inc of store.list({ open: true })) {
      this.#open.set(inc.id, inc);
      for (const m of inc.members) this.#memberOf.set(memberKey(m.key, m.area), inc.id);
    }
  }

  /** Open incidents, oldest first. */
  open(): Incident[] {
    return [...this.#open.values()].map((i) => structuredClone(i));
  }

  /** Whether HQ hears the broker at all: while it does not, every probe is unreachable. */
  setBroker(connected: boolean, now: number): void {
    this.#brokerConnected = connected;
    for (const r of this.#probes.values()) this.#reachability(r, now);
    this.tick(now);
  }

  /** A probe as it is now (after a state or health change), or its removal (undefined snapshot). */
  observe(key: string, snap: ProbeSnapshot | undefined, now: number): void {
    if (!snap) {
      this.#probes.delete(key);
      return;
    }
    let r = this.#probes.get(key);
    if (!r) {
      r = { snap, unreachableSince: null };
      this.#probes.set(key, r);
    }
    r.snap = snap;
    this.#reachability(r, now);
    this.#reconcile(r, now);
  }

  /** Timers: unreachable after its delay, settled incidents announced, quiet ones resolved. */
  tick(now: number): void {
    for (const r of this.#probes.values()) {
      if (
        r.unreachableSince !== null &&
        now - r.unreachableSince >= this.#s.unreachableAfterMs &&
        !this.#memberOf.has(memberKey(r.snap.key, "uplink"))
      )
        this.#openUnreachable(r, now);
    }
    for (const w of this.#maintenance.values()) if (w.until <= now) this.#maintenance.delete(w.id);
    for (const inc of [...this.#open.values()]) {
      const inMaint = this.#inMaintenance(inc, now);
      if (inMaint !== inc.in_maintenance) {
        inc.in_maintenance = inMaint;
        this.#changed(inc, now);
      }
      if (inc.resolving_since !== null && now - inc.resolving_since >= this.#s.resolveAfterMs) {
        this.#resolve(inc, now);
        continue;
      }
      if (inc.notified_at === null && !inc.in_maintenance && now - inc.reopened_at >= this.#s.settleMs) {
        inc.notified_at = now;
        this.#changed(inc, now);
        this.emit("notify", { status: "firing", incident: structuredClone(inc) } satisfies IncidentNotice);
      }
    }
  }

  /** Marks an incident acknowledged; false when there is no open incident with that id. */
  acknowledge(id: string, by: string, now: number): boolean {
    const inc = this.#open.get(id);
    if (!inc) return false;
    inc.acknowledged_at = now;
    inc.acknowledged_by = by;
    this.#changed(inc, now);
    return true;
  }

  /** Adds a maintenance window; incidents of a site inside one are kept but not announced. */
  addMaintenance(w: Omit<MaintenanceWindow, "id">, now: number): MaintenanceWindow {
    const window = { ...w, id: `mw-${randomBytes(6).toString("hex")}` };
    this.#maintenance.set(window.id, window);
    this.tick(now);
    return { ...window };
  }

  /** Ends a maintenance window early; false when unknown. */
  removeMaintenance(id: string, now: number): boolean {
    const had = this.#maintenance.delete(id);
    if (had) this.tick(now);
    return had;
  }

  maintenance(): MaintenanceWindow[] {
    return [...this.#maintenance.values()].map((w) => ({ ...w }));
  }

  #inMaintenance(inc: Incident, now: number): boolean {
    const active = (site: string) =>
      [...this.#maintenance.values()].some((w) => w.site === site && w.from <= now && now < w.until);
    return inc.sites.length > 0 && inc.sites.every(active);
  }

  #reachability(r: ProbeRecord, now: number): void {
    const unreachable = !this.#brokerConnected || r.snap.state === "offline";
    if (unreachable && r.unreachableSince === null) r.unreachableSince = now;
    if (!unreachable && r.unreachableSince !== null) {
      r.unreachableSince = null;
      const id = this.#memberOf.get(memberKey(r.snap.key, "uplink"));
      const inc = id === undefined ? undefined : this.#open.get(id);
      const m = inc?.members.find((x) => x.key === r.snap.key && x.area === "uplink");
      if (inc && m && m.recovered_at === null) {
        m.recovered_at = now;
        this.#resolving(inc, now);
        this.#changed(inc, now);
      }
    }
  }

  #openUnreachable(r: ProbeRecord, now: number): void {
    const { key, site, probe } = r.snap;
    const inc = this.#newIncident("probe_unreachable", "uplink", r.snap, now);
    inc.last_health = r.snap.health;
    this.#addMember(inc, {
      key,
      site,
      probe,
      area: "uplink",
      since: r.unreachableSince ?? now,
      probe_since: null,
      recovered_at: null,
      reason: this.#brokerConnected
        ? "offline at headquarters (the MQTT will, or a clean stop)"
        : "headquarters lost the fleet broker",
    });
    this.#open.set(inc.id, inc);
    // What it said last is inside: a failing area then is likely why it went quiet.
    this.#reconcile(r, now);
    this.#changed(inc, now);
  }

  #reconcile(r: ProbeRecord, now: number): void {
    const { key } = r.snap;
    const areas = r.snap.health?.areas ?? {};
    const failing = PROBE_AREAS.filter((a) => areas[a]?.state === "failing");
    // Recoveries first: a member that no longer fails.
    for (const a of PROBE_AREAS) {
      if (failing.includes(a)) continue;
      const id = this.#memberOf.get(memberKey(key, a));
      const inc = id === undefined ? undefined : this.#open.get(id);
      const m = inc?.members.find((x) => x.key === key && x.area === a);
      if (inc && m && m.recovered_at === null) {
        m.recovered_at = now;
        this.#resolving(inc, now);
        this.#changed(inc, now);
      }
    }
    // Upstream first, so a health naming LINK and LAN at once makes LINK the root.
    for (const area of failing) this.#place(r, area, now);
  }

  /** Puts a failing area into the incident it belongs to, opening one when it is a new cause. */
  #place(r: ProbeRecord, area: ProbeArea, now: number): void {
    const { key } = r.snap;
    const mk = memberKey(key, area);
    const current = this.#memberOf.get(mk);
    if (current !== undefined) {
      const inc = this.#open.get(current);
      const m = inc?.members.find((x) => x.key === key && x.area === area);
      if (inc && m && m.recovered_at !== null) {
        m.recovered_at = null;
        m.since = now;
        this.#resolving(inc, now);
        this.#changed(inc, now);
      }
      return;
    }
    const member = this.#member(r.snap, area, now);
    const evidence = this.#evidence(r.snap, area);
    const upstream = new Set<MemberArea>([...UPSTREAM[area], "uplink"]);
    // 1. Explained by a cause already open on this probe.
    const explained = [...this.#open.values()].find((i) =>
      i.members.some((m) => m.key === key && upstream.has(m.area)),
    );
    if (explained) return this.#join(explained, member, evidence, now);
    // 2. The cause of an incident that has not been announced yet: it becomes that one's root.
    const rerooted = [...this.#open.values()].find(
      (i) =>
        i.notified_at === null &&
        i.kind !== "probe_unreachable" &&
        i.kind !== "wan_target_down" &&
        i.probes.length === 1 &&
        i.probes[0] === key &&
        i.root_area !== "uplink" &&
        UPSTREAM[i.root_area].includes(area),
    );
    if (rerooted) {
      this.#join(rerooted, member, evidence, now);
      this.#reroot(rerooted, r.snap, area, now);
      this.#absorbDownstream(rerooted, key, area, now);
      return;
    }
    // 3. The same WAN target failing at another site within the window: one correlated incident.
    if (area === "wan") {
      const targets = failingTargets(r.snap, "wan");
      const shared = [...this.#open.values()].find(
        (i) =>
          (i.kind === "wan_down" || i.kind === "wan_target_down") &&
          !i.sites.includes(r.snap.site) &&
          now - i.opened_at <= this.#s.correlateWindowMs &&
          i.targets.some((t) => targets.includes(t)),
      );
      if (shared) {
        shared.targets = shared.targets.filter((t) => targets.includes(t));
        // Once announced its kind stays (a changed label would be a new alert at Alertmanager).
        if (shared.notified_at === null) shared.kind = "wan_target_down";
        this.#join(shared, member, evidence, now);
        return;
      }
    }
    // 4. The same root failed again within the flap window: the same incident, re-opened.
    const flapped = this.#recent.get(mk);
    if (flapped && flapped.resolved_at !== null && now - flapped.resolved_at <= this.#s.flapWindowMs) {
      this.#recent.delete(mk);
      flapped.resolved_at = null;
      flapped.resolving_since = null;
      flapped.notified_at = null;
      flapped.reopened++;
      flapped.reopened_at = now;
      flapped.members = [];
      flapped.evidence = [];
      this.#open.set(flapped.id, flapped);
      this.#join(flapped, member, evidence, now);
      this.#absorbDownstream(flapped, key, area, now);
      return;
    }
    // 5. A new cause.
    const inc = this.#newIncident(KIND_OF_AREA[area], area, r.snap, now);
    if (area === "wan") inc.targets = failingTargets(r.snap, "wan");
    this.#open.set(inc.id, inc);
    this.#join(inc, member, evidence, now);
    this.#absorbDownstream(inc, key, area, now);
  }

  /** Folds this probe's not-yet-announced incidents whose root depends on `area` into `into`. */
  #absorbDownstream(into: Incident, key: string, area: ProbeArea, now: number): void {
    for (const other of [...this.#open.values()]) {
      if (other === into || other.notified_at !== null || other.kind === "probe_unreachable") continue;
      if (other.probes.length !== 1 || other.probes[0] !== key || other.root_area === "uplink") continue;
      if (!UPSTREAM[other.root_area].includes(area)) continue;
      for (const m of other.members) {
        into.members.push(m);
        this.#memberOf.set(memberKey(m.key, m.area), into.id);
      }
      into.evidence.push(...other.evidence);
      this.#open.delete(other.id);
      // Never announced: nobody knows its id, so it is dropped rather than resolved.
      this.#store.put({ ...other, resolved_at: now, members: [], evidence: [], updated_at: now });
    }
    into.members.sort((a, b) => rank(a.area) - rank(b.area));
    this.#resolving(into, now);
    this.#changed(into, now);
  }

  #reroot(inc: Incident, snap: ProbeSnapshot, area: ProbeArea, now: number): void {
    inc.root_area = area;
    inc.kind = KIND_OF_AREA[area];
    inc.site = snap.site;
    inc.probe = snap.probe;
    inc.targets = area === "wan" ? failingTargets(snap, "wan") : [];
    this.#changed(inc, now);
  }

  #join(inc: Incident, member: IncidentMember, evidence: Evidence, now: number): void {
    this.#addMember(inc, member);
    inc.evidence.push(evidence);
    this.#resolving(inc, now);
    this.#changed(inc, now);
  }

  #addMember(inc: Incident, m: IncidentMember): void {
    inc.members.push(m);
    inc.members.sort((a, b) => rank(a.area) - rank(b.area));
    this.#memberOf.set(memberKey(m.key, m.area), inc.id);
  }

  #member(snap: ProbeSnapshot, area: ProbeArea, now: number): IncidentMember {
    const a = snap.health?.areas[area];
    return {
      key: snap.key,
      site: snap.site,
      probe: snap.probe,
      area,
      since: now,
      probe_since: a?.since ?? null,
      recovered_at: null,
      reason: a?.reason ?? "",
    };
  }

  /** The failing result the area's health names (else the area's latest failing one). */
  #evidence(snap: ProbeSnapshot, area: ProbeArea): Evidence {
    const a = snap.health?.areas[area];
    let hit: { h: CheckHistory; p: ResultPoint } | undefined;
    for (const h of snap.checks) {
      if (h.area !== area) continue;
      for (const p of h.results) {
        if (a?.last_result_id && p.id === a.last_result_id) hit = { h, p };
        else if (!a?.last_result_id && p.status !== "ok" && (!hit || p.received_at > hit.p.received_at))
          hit = { h, p };
      }
    }
    return {
      key: snap.key,
      area,
      check: hit?.h.check ?? null,
      kind: hit?.h.kind ?? null,
      target: hit?.p.target ?? null,
      status: hit?.p.status ?? null,
      code: hit?.p.error?.code ?? null,
      message: hit?.p.error?.message ?? a?.reason ?? "",
      result_id: hit?.p.id ?? a?.last_result_id ?? null,
      started_at: hit?.p.started_at ?? null,
    };
  }

  #newIncident(kind: IncidentKind, root: MemberArea, snap: ProbeSnapshot, now: number): Incident {
    return {
      id: `inc-${now.toString(36)}-${randomBytes(5).toString("hex")}`,
      kind,
      title: "",
      root_area: root,
      site: snap.site,
      probe: snap.probe,
      sites: [],
      probes: [],
      targets: [],
      members: [],
      evidence: [],
      last_health: null,
      opened_at: now,
      reopened_at: now,
      reopened: 0,
      notified_at: null,
      acknowledged_at: null,
      acknowledged_by: null,
      resolving_since: null,
      resolved_at: null,
      in_maintenance: false,
      updated_at: now,
    };
  }

  /** Starts or stops the resolve timer from the members (and the uplink of an unreachable probe). */
  #resolving(inc: Incident, now: number): void {
    const quiet = inc.members.every((m) => m.recovered_at !== null);
    if (quiet && inc.resolving_since === null) inc.resolving_since = now;
    if (!quiet) inc.resolving_since = null;
  }

  #resolve(inc: Incident, now: number): void {
    inc.resolved_at = now;
    inc.resolving_since = null;
    this.#open.delete(inc.id);
    for (const m of inc.members) this.#memberOf.delete(memberKey(m.key, m.area));
    if (inc.root_area !== "uplink") this.#recent.set(memberKey(inc.probes[0] ?? "", inc.root_area), inc);
    for (const [k, old] of this.#recent)
      if (old.resolved_at !== null && now - old.resolved_at > this.#s.flapWindowMs) this.#recent.delete(k);
    this.#changed(inc, now);
    // Settled and announced ones are announced resolved; a blip that never settled stays quiet.
    if (inc.notified_at !== null)
      this.emit("notify", { status: "resolved", incident: structuredClone(inc) } satisfies IncidentNotice);
  }

  #changed(inc: Incident, now: number): void {
    inc.sites = [...new Set(inc.members.map((m) => m.site))].sort();
    inc.probes = [...new Set(inc.members.map((m) => m.key))].sort();
    inc.title = titleOf(inc);
    inc.updated_at = now;
    this.#store.put(inc);
    this.emit("change", inc);
  }
}

/** `lab: link down (probe-1) — also LAN, DHCP, DNS, WAN, PHONE`. */
export function titleOf(inc: Incident): string {
  const areas = dependentAreas(inc).map((a) => a.toUpperCase());
  if (inc.kind === "wan_target_down" || inc.sites.length > 1)
    return `WAN target ${inc.targets.join(", ")} down at ${inc.sites.length} sites: ${inc.sites.join(", ")}`;
  const where = `${inc.site}: ${KIND_TITLE[inc.kind]} (${inc.probe})`;
  const cause =
    inc.kind === "probe_unreachable" && inc.members.some((m) => m.area !== "uplink")
      ? ` — reported: ${inc.members
          .filter((m) => m.area !== "uplink")
          .map((m) => `${m.area.toUpperCase()} failing`)
          .join(", ")}`
      : "";
  return cause ? `${where}${cause}` : areas.length > 0 ? `${where} — also ${areas.join(", ")}` : where;
}

/** The member areas other than the root, in dependency order, each once. */
export function dependentAreas(inc: Incident): MemberArea[] {
  return [...new Set(inc.members.map((m) => m.area))].filter((a) => a !== inc.root_area);
}

/** Targets of a probe's checks of `area` whose last result is not ok. */
function failingTargets(snap: ProbeSnapshot, area: ProbeArea): string[] {
  const out = new Set<string>();
  for (const h of snap.checks) {
    const last = h.results.at(-1);
    if (h.area === area && last && (last.status === "fail" || last.status === "error")) out.add(h.target);
  }
  return [...out].sort();
}
