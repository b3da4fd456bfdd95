import { createServer, type Server } from 'node:http';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { KeyStore } from './keys/keystore.js';
import type { PasswordHasher } from './accounts/passwords.js';
import type { AuthEvent, LoginFailure, LoginFailureCause } from './events.js';
import type { Store, StoreCommand } from './store/store.js';
import type { TokenDecision } from './tokens/bearer.js';

/** Outcomes of a refresh, as the store decided them. */
export type RefreshOutcome = 'rotated' | 'grace' | 'reused' | 'invalid';

/** Seconds, for store calls and what waits on them: Redis answers in well under a millisecond when healthy. */
const STORE_BUCKETS = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

/** The cached child for `key`, made on first use. */
function child<T>(cache: Map<string, T>, key: string, make: () => T): T {
  let c = cache.get(key);
  if (c === undefined) {
    c = make();
    cache.set(key, c);
  }
  return c;
}

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
  private readonly decisions: Counter<'where' | 'decision'>;
  private readonly failOpen: Counter<'where'>;
  private readonly revocationCheck: Histogram<'where'>;
  private readonly loginFailures: Counter<'cause'>;
  private readonly storeCommands: Histogram<'command'>;
  private readonly storeFailures: Counter<'command' | 'kind'>;
  private readonly publishLag: Histogram;
  private readonly publishFailures: Counter;

  /**
   * Labelled children of the metrics every request touches, one per label combination seen, so the hot path
   * builds a short string instead of prom-client hashing the labels each time.
   */
  private readonly requestSeries = new Map<string, { observe(value: number): void }>();
  private readonly decisionSeries = new Map<string, { inc(): void }>();

  constructor(sources: { hasher: PasswordHasher; keys: KeyStore; clock: () => number; store?: Store }) {
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
    this.decisions = new Counter({
      name: 'latchkey_token_decisions_total',
      help: 'Access tokens judged by latchkey: where (endpoint = its own Bearer endpoints, verify = GET /verify) and the decision (valid, revoked, invalid, expired, unavailable). Fail-open accepts count as valid here and in latchkey_token_fail_open_accepts_total.',
      labelNames: ['where', 'decision'],
      registers,
    });
    this.failOpen = new Counter({
      name: 'latchkey_token_fail_open_accepts_total',
      help: 'Tokens accepted on their signature alone because the store could not be asked (LATCHKEY_VERIFY_FAIL_OPEN).',
      labelNames: ['where'],
      registers,
    });
    this.revocationCheck = new Histogram({
      name: 'latchkey_revocation_check_duration_seconds',
      help: 'How long the revocation check of an access token took (the store lookup after the signature), apart from the rest of the request.',
      labelNames: ['where'],
      buckets: STORE_BUCKETS,
      registers,
    });
    this.loginFailures = new Counter({
      name: 'latchkey_login_failures_total',
      help: 'Refused logins by cause: wrong_credentials (unknown address or wrong password), disabled (right password, disabled account), throttled (too many attempts).',
      labelNames: ['cause'],
      registers,
    });
    this.storeCommands = new Histogram({
      name: 'latchkey_redis_command_duration_seconds',
      help: 'Redis calls by family (a store operation: one command, a transaction or a Lua script), failed ones included.',
      labelNames: ['command'],
      buckets: STORE_BUCKETS,
      registers,
    });
    this.storeFailures = new Counter({
      name: 'latchkey_redis_command_failures_total',
      help: 'Redis calls that failed, by family and kind: timeout (REDIS_COMMAND_TIMEOUT_MS passed) or error (connection down, refused, script error).',
      labelNames: ['command', 'kind'],
      registers,
    });
    new Gauge({
      name: 'latchkey_redis_up',
      help: '1 while the store answers a PING at scrape time, 0 when it does not (always 1 for the embedded store).',
      registers,
      async collect() {
        const store = sources.store;
        if (!store) return;
        this.set(await store.ping().then(() => 1, () => 0));
      },
    });
    this.publishLag = new Histogram({
      name: 'latchkey_revocation_stream_lag_seconds',
      help: 'From a revocation being done to its fact being on the revocation stream verifiers follow (the part of their delay latchkey controls).',
      buckets: STORE_BUCKETS,
      registers,
    });
    this.publishFailures = new Counter({
      name: 'latchkey_revocation_publish_failures_total',
      help: 'Revocation facts that did not reach the stream: verifiers that cached a token of those sessions accept it until it expires.',
      registers,
    });
    for (const result of ['rotated', 'grace', 'reused', 'invalid'] as const) this.refreshes.inc({ result }, 0);
    for (const where of ['endpoint', 'verify'] as const) {
      for (const decision of ['valid', 'revoked', 'invalid', 'expired', 'unavailable'] as const) this.decisions.inc({ where, decision }, 0);
      this.failOpen.inc({ where }, 0);
    }
    for (const cause of ['wrong_credentials', 'disabled', 'throttled'] as const) this.loginFailures.inc({ cause }, 0);
  }

  /** Adds the process's own metrics (CPU, memory, event-loop delay, GC); once, for the served registry. */
  collectProcessMetrics(): void {
    collectDefaultMetrics({ register: this.registry, prefix: 'latchkey_' });
    // prom-client names three gauges `…_total`, which Prometheus reserves for counters (`promtool check
    // metrics` refuses them). Their per-type twins without the suffix stay; the totals are their sums.
    for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) {
      this.registry.removeSingleMetric(`latchkey_${name}`);
    }
  }

  request(method: string, route: string, statusCode: number, seconds: number): void {
    child(this.requestSeries, `${method} ${statusCode} ${route}`, () => this.requests.labels({ method, route, status_code: String(statusCode) })).observe(seconds);
  }

  refresh(result: RefreshOutcome): void {
    this.refreshes.inc({ result });
  }

  event(event: AuthEvent): void {
    this.events.inc({ type: event.type });
    if (event.type === 'login_failed') this.loginFailures.inc({ cause: loginFailureCause(event.reason) });
  }

  /** One judged access token (src/tokens/bearer.ts). */
  decision(d: TokenDecision): void {
    child(this.decisionSeries, `${d.where} ${d.decision}`, () => this.decisions.labels({ where: d.where, decision: d.decision })).inc();
    if (d.failOpen) this.failOpen.inc({ where: d.where });
    if (d.checkSeconds !== undefined) this.revocationCheck.observe({ where: d.where }, d.checkSeconds);
  }

  /** One store call (src/store/redis-store.ts). */
  storeCommand(c: StoreCommand): void {
    this.storeCommands.observe({ command: c.command }, c.seconds);
    if (c.failure) this.storeFailures.inc({ command: c.command, kind: c.failure });
  }

  /** Revocation facts published (`lagSeconds` after the revocation) or, with null, lost. */
  revocationPublished(lagSeconds: number | null): void {
    if (lagSeconds === null) this.publishFailures.inc();
    else this.publishLag.observe(lagSeconds);
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

/** Unknown address and wrong password are one cause: a metric must not tell which addresses have accounts. */
function loginFailureCause(reason: LoginFailure): LoginFailureCause {
  return reason === 'disabled' || reason === 'throttled' ? reason : 'wrong_credentials';
}
