import { Counter, Gauge, Histogram, Registry } from "prom-client";

/**
 * Prometheus metrics of one responder, in a registry of its own (two responders in one process
 * never mix their counts):
 * - `ocsp_requests_total{method, outcome}`: answered requests (outcome: `good`, `revoked`,
 *   `unknown`, a responseStatus name, `fault:<kind>`...);
 * - `ocsp_request_duration_seconds{method}`: time from arrival to the answer;
 * - `ocsp_response_cache_entries`: pre-signed answers held; `ocsp_response_cache_hits_total`.
 */
export class ResponderMetrics {
  readonly registry = new Registry();
  readonly requests = new Counter({
    name: "ocsp_requests_total",
    help: "OCSP requests answered",
    labelNames: ["method", "outcome"] as const,
    registers: [this.registry],
  });
  readonly duration = new Histogram({
    name: "ocsp_request_duration_seconds",
    help: "Time from a request's arrival to its answer",
    labelNames: ["method"] as const,
    // From a cached answer (~0.1 ms) to a slow-responder behaviour (seconds).
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 2.5, 10],
    registers: [this.registry],
  });
  readonly cacheHits = new Counter({
    name: "ocsp_response_cache_hits_total",
    help: "Answers served from the pre-signed cache",
    registers: [this.registry],
  });
  readonly cacheEntries: Gauge;

  readonly cacheBytes: Gauge;

  /** Metrics reading the cache's size (entries) and its bytes (counted against its bound) at scrape time. */
  constructor(cacheSize: () => number, cacheBytes: () => number = () => 0) {
    this.cacheEntries = new Gauge({
      name: "ocsp_response_cache_entries",
      help: "Pre-signed answers held",
      registers: [this.registry],
      collect() {
        this.set(cacheSize());
      },
    });
    this.cacheBytes = new Gauge({
      name: "ocsp_response_cache_bytes",
      help: "Bytes of pre-signed answers counted against the cache bound (cache_max_mb)",
      registers: [this.registry],
      collect() {
        this.set(cacheBytes());
      },
    });
  }

  private readonly counters = new Map<string, { inc(): void }>();
  private readonly timers = new Map<string, { observe(v: number): void }>();

  /** Record one answered request; `seconds` from arrival to answer. Label children are cached: this runs on the hot path. */
  observe(method: string, outcome: string, seconds: number, cached: boolean): void {
    // Keep label cardinality bounded: multi-CertID outcomes collapse to their first status.
    const first = outcome.includes(",") ? outcome.slice(0, outcome.indexOf(",")) : outcome;
    const key = `${method} ${first}`;
    let counter = this.counters.get(key);
    if (!counter) {
      counter = this.requests.labels(method, first);
      this.counters.set(key, counter);
    }
    counter.inc();
    let timer = this.timers.get(method);
    if (!timer) {
      timer = this.duration.labels(method);
      this.timers.set(method, timer);
    }
    timer.observe(seconds);
    if (cached) this.cacheHits.inc();
  }
}
