import { Counter, Gauge, Histogram, Registry } from "prom-client";
import type { StapleSnapshot, StapleState } from "./staple-manager.js";
import { STAPLE_SOURCE_KINDS } from "./staple-source.js";

const STATES: StapleState[] = [
  "good",
  "revoked",
  "unknown",
  "none",
  "tryLater",
  "internalError",
  "malformedRequest",
  "sigRequired",
  "unauthorized",
  "unreadable",
];

/**
 * Prometheus metrics of one stapling server, in a registry of its own:
 * - `ocsp_staple_state{serial, state}`: 1 for what the next handshake gets, 0 for the others;
 * - `ocsp_staple_source{serial, source}`: 1 for the staple source in force (`verified`,
 *   `as-received`, `bytes`, `file`, `none`), 0 for the others;
 * - `ocsp_staple_next_update_timestamp_seconds{serial}`, `ocsp_staple_age_seconds{serial}`
 *   (since thisUpdate), `ocsp_staple_consecutive_failures{serial}`: read from the snapshots at
 *   scrape time;
 * - `ocsp_fetches_total{serial, outcome}` (outcome `ok`, `timeout`, `network`, `http`,
 *   `invalid`), `ocsp_fetch_duration_seconds{serial}`, `ocsp_staple_invalidations_total{serial}`;
 * - `ocsp_staple_requests_total{stapled}`: handshakes that asked for a staple (`true`: one was sent).
 */
export class StaplerMetrics {
  readonly registry = new Registry();
  readonly fetches = new Counter({
    name: "ocsp_fetches_total",
    help: "OCSP queries by outcome",
    labelNames: ["serial", "outcome"] as const,
    registers: [this.registry],
  });
  readonly fetchDuration = new Histogram({
    name: "ocsp_fetch_duration_seconds",
    help: "Time an OCSP query took, verification included",
    labelNames: ["serial"] as const,
    // From a responder on the same machine (ms) to response_timeout (1 s by default) and beyond.
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });
  readonly invalidations = new Counter({
    name: "ocsp_staple_invalidations_total",
    help: "Staples dropped after recovery_max_tries failures",
    labelNames: ["serial"] as const,
    registers: [this.registry],
  });
  readonly handshakes = new Counter({
    name: "ocsp_staple_requests_total",
    help: "Handshakes that asked for a staple",
    labelNames: ["stapled"] as const,
    registers: [this.registry],
  });
  private readonly stapled = this.handshakes.labels("true");
  private readonly notStapled = this.handshakes.labels("false");

  /** Metrics reading per-certificate snapshots through `snapshots` at scrape time. */
  constructor(snapshots: () => StapleSnapshot[]) {
    new Gauge({
      name: "ocsp_staple_state",
      help: "1 for what the next handshake is stapled with, 0 otherwise",
      labelNames: ["serial", "state"] as const,
      registers: [this.registry],
      collect() {
        this.reset();
        for (const s of snapshots())
          for (const state of STATES) this.set({ serial: s.serial, state }, s.staple === state ? 1 : 0);
      },
    });
    new Gauge({
      name: "ocsp_staple_source",
      help: "1 for the staple source in force (anything but verified is for testing clients), 0 otherwise",
      labelNames: ["serial", "source"] as const,
      registers: [this.registry],
      collect() {
        this.reset();
        for (const s of snapshots())
          for (const source of STAPLE_SOURCE_KINDS) this.set({ serial: s.serial, source }, s.stapleSource === source ? 1 : 0);
      },
    });
    new Gauge({
      name: "ocsp_staple_next_update_timestamp_seconds",
      help: "nextUpdate of the staple (Unix time)",
      labelNames: ["serial"] as const,
      registers: [this.registry],
      collect() {
        this.reset();
        for (const s of snapshots()) if (s.nextUpdate) this.set({ serial: s.serial }, s.nextUpdate.getTime() / 1000);
      },
    });
    new Gauge({
      name: "ocsp_staple_age_seconds",
      help: "Seconds since the staple's thisUpdate",
      labelNames: ["serial"] as const,
      registers: [this.registry],
      collect() {
        this.reset();
        for (const s of snapshots()) if (s.stapleAgeMs !== undefined) this.set({ serial: s.serial }, s.stapleAgeMs / 1000);
      },
    });
    new Gauge({
      name: "ocsp_staple_consecutive_failures",
      help: "Failed OCSP queries in a row",
      labelNames: ["serial"] as const,
      registers: [this.registry],
      collect() {
        this.reset();
        for (const s of snapshots()) this.set({ serial: s.serial }, s.consecutiveFailures);
      },
    });
  }

  /** Count one handshake that asked for a staple. */
  handshake(stapled: boolean): void {
    (stapled ? this.stapled : this.notStapled).inc();
  }
}
