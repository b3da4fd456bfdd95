import fastifyCors from '@fastify/cors';
import fastifyHelmet from '@fastify/helmet';
import Fastify, { type FastifyBaseLogger, type FastifyReply, type FastifyError, type FastifyInstance } from 'fastify';
import pino, { type Logger } from 'pino';
import { Accounts } from './accounts/accounts.js';
import { PasswordHasher } from './accounts/passwords.js';
import type { Config } from './config.js';
import { ApiError, ReplicationPendingError, replicationPending, StoreUnavailableError, unavailable } from './errors.js';
import { KeyStore } from './keys/keystore.js';
import { EventBus, type AuthEvent } from './events.js';
import { loggerOptions } from './logger.js';
import { Metrics } from './metrics.js';
import { accountRoutes } from './routes/accounts.js';
import { discoveryRoutes, rootDiscoveryRoutes } from './routes/discovery.js';
import { clientContext } from './routes/common.js';
import { corsOptions } from './routes/cors.js';
import { metaRoutes } from './routes/meta.js';
import { oauthRoutes } from './routes/oauth.js';
import { sessionRoutes } from './routes/sessions.js';
import { tokenRoutes } from './routes/tokens.js';
import { verifyRoutes } from './routes/verify.js';
import type { Tracing } from './tracing.js';
import { MemoryStore } from './store/memory-store.js';
import { RedisStore } from './store/redis-store.js';
import type { Store } from './store/store.js';
import { AccessTokens, NoSigningKeyError } from './tokens/access-token.js';
import { BearerAuth } from './tokens/bearer.js';
import { Clients } from './tokens/clients.js';
import { TokenIssuer } from './tokens/issuer.js';
import { Revocations } from './tokens/revocation.js';
import { Throttles } from './throttle.js';

export interface AppOverrides {
  /** A store to use instead of the configured one (the app will not close it). */
  store?: Store;
  /** Epoch milliseconds; tests pass a controllable clock. */
  clock?: () => number;
  logger?: Logger;
  onEvent?: (event: AuthEvent) => void;
  /** OpenTelemetry, when started (src/tracing.ts): every request gets a span. */
  tracing?: Tracing;
}

export interface AppServices {
  store: Store;
  keys: KeyStore;
  events: EventBus;
  issuer: TokenIssuer;
  revocations: Revocations;
  bearer: BearerAuth;
  accounts: Accounts;
  metrics: Metrics;
  throttles: Throttles;
}

/**
 * Margin for clock drift between instances and verifiers, in seconds. A revocation fact, a deny-list
 * entry or a cached decision must outlive the latest moment any checker still accepts the token:
 * `exp` + the allowed skew + this margin (README "Security model").
 */
export const CLOCK_DRIFT_MARGIN_SECONDS = 30;

declare module 'fastify' {
  interface FastifyInstance {
    latchkey: AppServices;
  }
  interface FastifyContextConfig {
    /** `attempt`: counts against the client IP's login/registration/password budget (src/throttle.ts). */
    throttle?: 'attempt';
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

export class StartupError extends Error {
  override name = 'StartupError';
}

/** Builds the whole service without listening. The only composition root: tests build it the same way. */
export async function buildApp(config: Config, overrides: AppOverrides = {}): Promise<FastifyInstance> {
  const logger = overrides.logger ?? pino(loggerOptions(config.logLevel));
  const clock = overrides.clock ?? Date.now;

  const keys = new KeyStore(config.keysDir, logger);
  await keys.load();
  if (keys.size === 0) {
    if (config.env === 'production') {
      throw new StartupError(`no signing key in ${config.keysDir}; create one with "npm run keys -- generate"`);
    }
    await keys.ensureKey(new Date(clock()));
  }
  keys.start(config.keysRescan * 1000);

  if (config.threadPoolSize <= config.hashConcurrency) {
    // Every token response waits for a libuv thread to sign it; if hashes can hold them all, refreshes
    // queue behind logins.
    logger.warn(
      { threadPoolSize: config.threadPoolSize, hashConcurrency: config.hashConcurrency },
      `UV_THREADPOOL_SIZE leaves no thread for signing while ${config.hashConcurrency} password hashes run; ` +
        `start with UV_THREADPOOL_SIZE=${config.hashConcurrency + 4} or lower LATCHKEY_HASH_CONCURRENCY`,
    );
  }

  const horizonMs = (config.accessTokenTtl + config.clockSkew + CLOCK_DRIFT_MARGIN_SECONDS) * 1000;
  const store = overrides.store ?? (await openStore(config, logger, horizonMs + 60_000));
  const hasher = new PasswordHasher(config.argon2, config.hashConcurrency, config.hashQueue);
  const metrics = new Metrics({ hasher, keys, clock, store });
  store.observe?.((command) => metrics.storeCommand(command));
  const events = new EventBus(logger);
  events.on((event) => metrics.event(event));
  if (overrides.onEvent) events.on(overrides.onEvent);
  const access = new AccessTokens(keys, {
    issuer: config.issuer,
    audience: config.audience,
    ttlSeconds: config.accessTokenTtl,
    clockSkewSeconds: config.clockSkew,
  });
  const log = logger;
  const revocations = new Revocations({
    store,
    events,
    clock,
    log,
    horizonMs,
    graceAfterExpMs: (config.clockSkew + CLOCK_DRIFT_MARGIN_SECONDS) * 1000,
    metrics,
    sessionMaxMs: config.sessionMaxTtl * 1000,
  });
  const issuer = new TokenIssuer({
    store,
    access,
    revocations,
    clock,
    log,
    metrics,
    policy: {
      refreshTtlSeconds: config.refreshTokenTtl,
      sessionMaxTtlSeconds: config.sessionMaxTtl,
      graceSeconds: config.refreshGrace,
      maxSessionsPerUser: config.maxSessionsPerUser,
    },
  });
  const bearer = new BearerAuth({ store, access, clock, log, onDecision: (d) => metrics.decision(d) });
  const throttles = new Throttles(store, config);
  const accounts = new Accounts({ store, hasher, revocations, clock, log, throttles, events });
  const clients = new Clients(config.clients);

  const app = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    bodyLimit: config.bodyLimit,
    // A hop count as proxy-addr reads it: the nearest n peers are proxies (Fastify's types lack the number form).
    trustProxy:
      typeof config.trustProxy === 'number'
        ? ((hops: number) => (_address: string, hop: number) => hop < hops)(config.trustProxy)
        : config.trustProxy,
    return503OnClosing: true,
    // Errors the router raises before any route runs (a malformed %-escape in the path) get the contract
    // shape too, without echoing the path.
    frameworkErrors: (_err, _request, reply) => {
      void (reply as unknown as FastifyReply).code(400).send(new ApiError('invalid_request', 'The request URL is malformed.').toBody());
    },
    // Slow clients (slowloris, slow bodies) hold a connection only this long. Node checks these limits on
    // an interval (connectionsCheckingInterval, 30 s by default): check every second so they hold.
    requestTimeout: config.server.requestTimeoutMs,
    keepAliveTimeout: config.server.keepAliveTimeoutMs,
    maxRequestsPerSocket: config.server.maxRequestsPerSocket,
    http: {
      headersTimeout: config.server.headersTimeoutMs,
      requestTimeout: config.server.requestTimeoutMs,
      connectionsCheckingInterval: Math.min(1000, config.server.headersTimeoutMs),
    },
  });
  if (config.server.maxConnections > 0) app.server.maxConnections = config.server.maxConnections;
  app.decorate('latchkey', { store, keys, events, issuer, revocations, bearer, accounts, metrics, throttles });
  app.addHook('onClose', async () => keys.stop());
  if (!overrides.store) app.addHook('onClose', async () => store.close());

  if (overrides.tracing) await app.register(overrides.tracing.fastify.plugin());

  // JSON only: drop Fastify's default text/plain parser so anything else is a 415.
  app.removeContentTypeParser('text/plain');
  // JSON is UTF-8 (RFC 8259 §8.1): another declared charset is a 415; a byte order mark, which RFC 8259
  // forbids senders to add, and bytes that are not UTF-8 are a 400 instead of being decoded into
  // replacement characters. Then Fastify's own parser (prototype-poisoning checks included).
  app.removeContentTypeParser('application/json');
  const jsonParser = app.getDefaultJsonParser('error', 'error');
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (request, body, done) => {
    const charset = /;\s*charset\s*=\s*"?([^";\s]*)/i.exec(request.headers['content-type'] ?? '')?.[1];
    if (charset !== undefined && !/^utf-?8$/i.test(charset)) {
      return done(new ApiError('unsupported_media_type', 'Send application/json in UTF-8.'), undefined);
    }
    const bytes = body as Buffer;
    if (bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) {
      return done(new ApiError('invalid_request', 'body: must not start with a byte order mark'), undefined);
    }
    let text: string;
    try {
      text = utf8.decode(bytes);
    } catch {
      return done(new ApiError('invalid_request', 'body: is not valid UTF-8'), undefined);
    }
    jsonParser(request, text, done);
  });
  // Headers an API should send (nosniff, no framing, no referrer, a CSP that allows nothing: latchkey
  // never serves a page). HSTS only where the cookies are Secure, i.e. outside plain-http development.
  await app.register(fastifyHelmet, {
    global: true,
    contentSecurityPolicy: { useDefaults: false, directives: { defaultSrc: ["'none'"], frameAncestors: ["'none'"] } },
    strictTransportSecurity: config.cookie.secure ? { maxAge: 31_536_000 } : false,
    crossOriginResourcePolicy: { policy: 'same-site' },
  });
  app.addHook('onResponse', async (request, reply) => {
    metrics.request(request.method, request.routeOptions.url ?? 'unmatched', reply.statusCode, reply.elapsedTime / 1000);
  });
  app.setErrorHandler((err: FastifyError, request, reply) => {
    const api = toApiError(err, request.log, metrics);
    return reply.code(api.status).headers(api.headers).send(api.toBody());
  });
  app.setNotFoundHandler((_request, reply) => {
    const api = new ApiError('not_found', 'No such endpoint.');
    return reply.code(404).send(api.toBody());
  });

  // Before everything else, so that errors (401, 429, 503) carry CORS headers too and a page can read them.
  await app.register(fastifyCors, corsOptions(config));
  // Before the body is even parsed: a throttled address costs nothing more.
  app.addHook('onRequest', async (request) => {
    if (request.routeOptions.config.throttle !== 'attempt') return;
    try {
      await throttles.attempt(request.ip);
    } catch (err) {
      if (err instanceof ApiError && err.code === 'rate_limited' && request.routeOptions.url?.endsWith('/login')) {
        const { ip, userAgent } = clientContext(request);
        events.emit({ type: 'login_failed', userId: null, account: null, reason: 'throttled', ip, userAgent });
      }
      throw err;
    }
  });
  await app.register(
    async (scope) => {
      await scope.register(accountRoutes, { accounts, config });
      await scope.register(tokenRoutes, { accounts, issuer, revocations, bearer, clients, config, throttles });
      await scope.register(oauthRoutes, { issuer, revocations, bearer, clients, store, config });
      await scope.register(discoveryRoutes, { config });
      await scope.register(sessionRoutes, { bearer, revocations, store, clock });
      await scope.register(verifyRoutes, { bearer, config, store });
      await scope.register(metaRoutes, { config, keys, store, clock });
    },
    { prefix: config.basePath },
  );
  await app.register(rootDiscoveryRoutes, { config });
  return app;
}

async function openStore(config: Config, logger: Logger, revocationRetentionMs: number): Promise<Store> {
  if (!config.redis) {
    logger.warn(
      'NO REDIS CONFIGURED: using the in-process store. Sessions vanish on restart and are not shared between ' +
        'instances. Set REDIS_URL for anything but local development.',
    );
    return new MemoryStore();
  }
  const store = new RedisStore({ ...config.redis, logger, revocationRetentionMs });
  if (await store.connect()) logger.info('connected to redis');
  return store;
}

/** Maps anything thrown to the error contract. Clients never see internals; the log gets the cause. */
function toApiError(err: FastifyError, log: FastifyBaseLogger, metrics: Metrics): ApiError {
  if (err instanceof ApiError) {
    if (err.cause) log.warn({ reason: (err.cause as Error).message }, err.message);
    return err;
  }
  if (err instanceof ReplicationPendingError) {
    log.error({ reason: err.message, connectedReplicas: err.connectedReplicas }, 'answering 503: revocation not yet replicated');
    metrics.answeredUnavailable('replicas');
    return replicationPending();
  }
  if (err instanceof StoreUnavailableError || err instanceof NoSigningKeyError) {
    log.warn({ reason: err.message }, 'answering 503');
    metrics.answeredUnavailable(err instanceof StoreUnavailableError ? 'store' : 'no_signing_key');
    return unavailable();
  }
  const status = err.statusCode ?? 500;
  if (status === 413) return new ApiError('payload_too_large', 'The request body is too large.');
  if (status === 415) return new ApiError('unsupported_media_type', 'Send application/json.');
  if (status === 429) return new ApiError('rate_limited', 'Too many requests.', { 'retry-after': '60' });
  if (status >= 400 && status < 500) {
    return new ApiError('invalid_request', err.code?.startsWith('FST_ERR_CTP') ? 'The request body is not valid JSON.' : 'The request is malformed.');
  }
  log.error({ err }, 'unhandled error');
  return new ApiError('server_error', 'Something went wrong on our side.');
}
