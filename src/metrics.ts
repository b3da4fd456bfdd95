import { createServer, type Server } from 'node:http';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { KeyStore } from './keys/keystore.js';
import type { PasswordHasher } from './accounts/passwords.js';
import type { AuthEvent } from './events.js';

/** Outcomes of a refresh, as the store decided them. */
export type RefreshOutcome = 'rotated' | 'grace' | 'reused' | 'invalid';

/**
 * Prometheus metrics (text format), served on their own port so they are never exposed with the API.
 * Labels carry routes, status codes and outcomes only: never a user, session, token or address, so the
 * series stay few and the scrape reveals nothing about anyone.
 */
export class Metrics {
  readonly registry = new Registry();
  private readonly requests: Histogram<'method' | 'route' | 'status_code'>;
  private readonly refreshes: Counter<'result'>;
  private readonly events: Counter<'type'>;
  private readonly unavailable: Counter<'reason'>;

  /** One child per label combination seen, so the hot path builds a short string, not a label hash. */
  private readonly requestSeries = new Map<string, { observe(value: number): void }>();

  constructor(sources: { hasher: PasswordHasher; keys: KeyStore; clock: () => number }) {
    const registers = [this.registry];
    this.requests = new Histogram({
      name: 'latchkey_http_request_duration_seconds',
      help: 'HTTP requests by route and status, and how long they took.',
      labelNames: ['method', 'route', 'status_code'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    });
    this.refreshes = new Counter({
      name: 'latchkey_refresh_total',
      help: 'Refresh-token presentations by outcome: rotated, grace (the just-spent token within the window), reused (session revoked), invalid.',
      labelNames: ['result'],
      registers,
    });
    this.events = new Counter({
      name: 'latchkey_auth_events_total',
      help: 'Security and revocation events (refresh_token_reused, session_revoked, user_sessions_revoked, access_token_denied).',
      labelNames: ['type'],
      registers,
    });
    this.unavailable = new Counter({
      name: 'latchkey_unavailable_total',
      help: 'Requests answered 503 because the store or a signing key was not available.',
      labelNames: ['reason'],
      registers,
    });
    new Gauge({
      name: 'latchkey_password_hashes',
      help: 'argon2id hashes running and waiting for a slot.',
      labelNames: ['state'],
      registers,
      collect() {
        const { running, waiting } = sources.hasher.load;
        this.set({ state: 'running' }, running);
        this.set({ state: 'waiting' }, waiting);
      },
    });
    new Gauge({
      name: 'latchkey_jwks_keys',
      help: 'Public keys in the JWKS now.',
      registers,
      collect() {
        this.set(sources.keys.jwks(sources.clock()).kids.length);
      },
    });
    new Gauge({
      name: 'latchkey_signing_key_active',
      help: '1 while a signing key is active, 0 when none is (token endpoints answer 503).',
      registers,
      collect() {
        this.set(sources.keys.signer(sources.clock()) ? 1 : 0);
      },
    });
    for (const result of ['rotated', 'grace', 'reused', 'invalid'] as const) this.refreshes.inc({ result }, 0);
  }

  /** Adds the process's own metrics (CPU, memory, event-loop delay, GC); once, for the served registry. */
  collectProcessMetrics(): void {
    collectDefaultMetrics({ register: this.registry, prefix: 'latchkey_' });
  }

  request(method: string, route: string, statusCode: number, seconds: number): void {
    const key = `${method} ${statusCode} ${route}`;
    let series = this.requestSeries.get(key);
    if (!series) {
      series = this.requests.labels({ method, route, status_code: String(statusCode) });
      this.requestSeries.set(key, series);
    }
    series.observe(seconds);
  }

  refresh(result: RefreshOutcome): void {
    this.refreshes.inc({ result });
  }

  event(event: AuthEvent): void {
    this.events.inc({ type: event.type });
  }

  answeredUnavailable(reason: 'store' | 'no_signing_key' | 'replicas'): void {
    this.unavailable.inc({ reason });
  }
}

/** A plain HTTP server with one route, GET /metrics. Port 0 picks a free port. */
export async function listenMetrics(metrics: Metrics, host: string, port: number): Promise<Server> {
  const server = createServer((req, res) => {
    if (req.method !== 'GET' || req.url?.split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      return;
    }
    metrics.registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text),
      () => res.writeHead(500, { 'content-type': 'text/plain' }).end('metrics unavailable\n'),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return server;
}
