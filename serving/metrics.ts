import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";

/**
 * Prometheus metrics of one server (its own registry, so several apps in one process — tests —
 * do not collide). Labels carry route patterns (/mastery/:studentId), never ids.
 */
export class ServerMetrics {
  readonly registry = new Registry();
  readonly requests = new Counter({
    name: "mastery_http_requests_total",
    help: "HTTP requests by method, route pattern and status",
    labelNames: ["method", "route", "status"] as const,
    registers: [this.registry],
  });
  readonly duration = new Histogram({
    name: "mastery_http_request_duration_seconds",
    help: "HTTP request duration by route pattern",
    labelNames: ["method", "route"] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [this.registry],
  });
  readonly events = new Counter({
    name: "mastery_events_total",
    help: "Events received through POST /events by outcome",
    labelNames: ["outcome"] as const,
    registers: [this.registry],
  });
  readonly cache = new Counter({
    name: "mastery_cache_total",
    help: "Hot mastery cache lookups by result",
    labelNames: ["result"] as const,
    registers: [this.registry],
  });
  readonly historyCache = new Counter({
    name: "mastery_history_cache_total",
    help: "GET /mastery/:id/:topic/history cache lookups by result (hit, miss)",
    labelNames: ["result"] as const,
    registers: [this.registry],
  });
  readonly cacheInvalidation = new Gauge({
    name: "mastery_cache_invalidation_up",
    help: "1 while the cross-process body cache invalidation channel is subscribed (long TTL), else 0",
    registers: [this.registry],
  });
  /** Set by the app to read its publisher's owed keys at each scrape. */
  owedInvalidations: () => number = () => 0;
  readonly cacheInvalidationOwed = new Gauge({
    name: "mastery_cache_invalidation_owed_keys",
    help: "Student keys of failed invalidation publishes not yet re-published (retried in the background; an owed flush-all counts as 1)",
    registers: [this.registry],
    collect: () => {
      this.cacheInvalidationOwed.set(this.owedInvalidations());
    },
  });
  readonly cacheInvalidationErrors = new Counter({
    name: "mastery_cache_invalidation_publish_errors_total",
    help: "Body cache invalidations this server failed to publish to the other processes",
    registers: [this.registry],
  });
  readonly alerts = new Counter({
    name: "mastery_alerts_total",
    help: "At-risk alerts raised",
    registers: [this.registry],
  });
  readonly webhooks = new Counter({
    name: "mastery_webhook_deliveries_total",
    help: "Webhook delivery attempts by outcome (ok, retry, failed)",
    labelNames: ["outcome"] as const,
    registers: [this.registry],
  });
  readonly stalls = new Counter({
    name: "mastery_event_loop_stalls_total",
    help: "Stretches of 100 ms or more in which the event loop answered nothing (serving/stallWatch.ts)",
    registers: [this.registry],
  });
  readonly stalledSeconds = new Counter({
    name: "mastery_event_loop_stalled_seconds_total",
    help: "Total length of those stretches",
    registers: [this.registry],
  });

  constructor(opts: { defaultMetrics?: boolean } = {}) {
    if (opts.defaultMetrics !== false) collectDefaultMetrics({ register: this.registry });
  }
}
