import fastifyCors from '@fastify/cors';
import fastifyRateLimit from '@fastify/rate-limit';
import Fastify, { type FastifyBaseLogger, type FastifyError, type FastifyInstance } from 'fastify';
import pino, { type Logger } from 'pino';
import { Accounts } from './accounts/accounts.js';
import { PasswordHasher } from './accounts/passwords.js';
import type { Config } from './config.js';
import { ApiError, StoreUnavailableError, unavailable } from './errors.js';
import { KeyStore } from './keys/keystore.js';
import { EventBus, type AuthEvent } from './events.js';
import { loggerOptions } from './logger.js';
import { Metrics } from './metrics.js';
import { accountRoutes } from './routes/accounts.js';
import { discoveryRoutes, rootDiscoveryRoutes } from './routes/discovery.js';
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
import { DecidedTokens } from './tokens/decided-tokens.js';
import { TokenIssuer } from './tokens/issuer.js';
import { Revocations } from './tokens/revocation.js';

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
}

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
  // Forward auth remembers decided tokens; revocations reach that memory as events (here) and on the
  // revocation stream (other instances). A store of another kind than these two is always asked.
  const decided =
    store instanceof RedisStore || store instanceof MemoryStore
      ? new DecidedTokens({
          capacity: config.verifyCacheSize,
          skewMs: config.clockSkew * 1000,
          horizonMs,
          keyPublished: (kid, now) => keys.verificationKey(kid, now) !== null,
          stream:
            store instanceof RedisStore
              ? { connect: () => store.streamConnection(), keyPrefix: store.keyPrefix, connected: () => store.connected() }
              : null,
          clock,
          log: logger,
        })
      : undefined;
  if (decided) events.on((event) => decided.onEvent(event));
  const bearer = new BearerAuth({ store, access, clock, log, onDecision: (d) => metrics.decision(d), decided });
  const accounts = new Accounts({ store, hasher, revocations, clock, log, events });
  const clients = new Clients(config.clients);

  const app = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    bodyLimit: config.bodyLimit,
    trustProxy: config.trustProxy,
    return503OnClosing: true,
  });
  app.decorate('latchkey', { store, keys, events, issuer, revocations, bearer, accounts, metrics });
  app.addHook('onClose', async () => keys.stop());
  if (decided) app.addHook('onClose', async () => decided.close());
  if (!overrides.store) app.addHook('onClose', async () => store.close());

  if (overrides.tracing) await app.register(overrides.tracing.fastify.plugin());

  // JSON only: drop Fastify's default text/plain parser so anything else is a 415.
  app.removeContentTypeParser('text/plain');
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
  // Per-instance, in-memory counters: a brake on password guessing from one address. Account-wide
  // throttling across instances would need a shared store and is not attempted here.
  await app.register(fastifyRateLimit, {
    global: false,
    onExceeded: (request) => {
      if (request.routeOptions.url?.endsWith('/login')) events.emit({ type: 'login_failed', cause: 'throttled', userId: null });
    },
    errorResponseBuilder: (_request, context) =>
      new ApiError('rate_limited', 'Too many attempts; retry later.', {
        'retry-after': String(Math.max(1, Math.ceil(context.ttl / 1000))),
      }),
  });
  await app.register(
    async (scope) => {
      await scope.register(accountRoutes, { accounts, config });
      await scope.register(tokenRoutes, { accounts, issuer, revocations, bearer, clients, config });
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
