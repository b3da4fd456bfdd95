import fastifyCors from '@fastify/cors';
import Fastify, { type FastifyBaseLogger, type FastifyReply, type FastifyError, type FastifyInstance } from 'fastify';
import pino, { type Logger } from 'pino';
import { readFile } from 'node:fs/promises';
import { Accounts } from './accounts/accounts.js';
import { PasswordResets } from './accounts/password-reset.js';
import { PasswordHasher } from './accounts/passwords.js';
import { AdminKeys } from './admin/admin-keys.js';
import { AuditTrail } from './audit/audit.js';
import { systemContext } from './audit/context.js';
import { createMailer, type Mailer } from './mail/mailer.js';
import type { Config } from './config.js';
import { ApiError, ReplicationPendingError, replicationPending, StoreUnavailableError, unavailable } from './errors.js';
import { KeyStore } from './keys/keystore.js';
import { EventBus, type AuthEventListener } from './events.js';
import { loggerOptions } from './logger.js';
import { Metrics } from './metrics.js';
import { accountRoutes } from './routes/accounts.js';
import { discoveryRoutes, rootDiscoveryRoutes } from './routes/discovery.js';
import { attemptThrottle } from './routes/common.js';
import { corsOptions } from './routes/cors.js';
import { lazyChildLogger } from './request-logger.js';
import { securityHeaders } from './security-headers.js';
import { passwordRoutes } from './routes/password.js';
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
import { Throttles } from './throttle.js';

export interface AppOverrides {
  /** A store to use instead of the configured one (the app will not close it). */
  store?: Store;
  /** Epoch milliseconds; tests pass a controllable clock. */
  clock?: () => number;
  logger?: Logger;
  /** Hears every event, with its action context, as the audit trail does (tests). */
  onEvent?: AuthEventListener;
  /** OpenTelemetry, when started (src/tracing.ts): every request gets a span. */
  tracing?: Tracing;
}

/** What the public app, the admin app and the CLI share: accounts, revocations, the audit trail. */
export interface CoreServices {
  store: Store;
  events: EventBus;
  audit: AuditTrail;
  revocations: Revocations;
  hasher: PasswordHasher;
  accounts: Accounts;
  adminKeys: AdminKeys;
  resets: PasswordResets;
  mailer: Mailer | null;
  clock: () => number;
  log: Logger;
}

export interface AppServices extends CoreServices {
  keys: KeyStore;
  issuer: TokenIssuer;
  bearer: BearerAuth;
  metrics: Metrics;
  throttles: Throttles;
}

/**
 * Margin for clock drift between instances and verifiers, in seconds. A revocation fact, a deny-list
 * entry or a cached decision must outlive the latest moment any checker still accepts the token:
 * `exp` + the allowed skew + this margin (README "Security model").
 */
export const CLOCK_DRIFT_MARGIN_SECONDS = 30;

/** The longest any checker accepts a token issued now, in ms: how long a revocation fact matters. */
export const revocationHorizonMs = (config: Config): number => (config.accessTokenTtl + config.clockSkew + CLOCK_DRIFT_MARGIN_SECONDS) * 1000;

/** How long the revocation stream keeps its facts: the horizon, plus a minute for slow readers. */
export const revocationRetentionMs = (config: Config): number => revocationHorizonMs(config) + 60_000;

declare module 'fastify' {
  interface FastifyInstance {
    latchkey: AppServices;
  }
  interface FastifyContextConfig {
    /** `attempt`: counts against the client IP's login/registration/password budget (src/throttle.ts). */
    throttle?: 'attempt';
    /**
     * Forward auth (`/verify`): a gateway reads the identity headers of its 200 and drops the rest, and no
     * browser is ever shown it (a browser sends no Bearer token by itself, so it only ever gets the 401).
     * Its 200 therefore goes without the browser security headers, which would be ≈ 450 bytes on every
     * API request behind the gateway; its errors keep them (a gateway may relay those to the client).
     */
    forwardAuth?: true;
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

  const horizonMs = revocationHorizonMs(config);
  const store = overrides.store ?? (await openStore(config, logger, revocationRetentionMs(config)));
  const hasher = new PasswordHasher(config.argon2, config.hashConcurrency, config.hashQueue);
  const metrics = new Metrics({ hasher, keys, clock, store });
  store.observe?.((command) => metrics.storeCommand(command));
  const throttles = new Throttles(store, config);
  const core = await buildCoreServices(config, { store, clock, logger, onEvent: overrides.onEvent, hasher, metrics, throttles });
  const { events, revocations, accounts, audit } = core;
  events.on((event) => metrics.event(event));
  const access = new AccessTokens(keys, {
    issuer: config.issuer,
    audience: config.audience,
    ttlSeconds: config.accessTokenTtl,
    clockSkewSeconds: config.clockSkew,
  });
  const log = logger;
  const issuer = new TokenIssuer({
    store,
    access,
    revocations,
    events,
    clock,
    log,
    metrics,
    throttles,
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
  const clients = new Clients(config.clients);
  if (!core.mailer) {
    logger.warn(
      config.env === 'production'
        ? 'PASSWORD RESET MAIL IS OFF: no LATCHKEY_SMTP_URL; POST /password/forgot answers 503 until one is set'
        : 'PASSWORD RESET MAIL IS OFF: no LATCHKEY_SMTP_URL; POST /password/forgot answers 202 but sends nothing',
    );
  }
  if (config.bootstrapAdmin) await bootstrapAdmin(config.bootstrapAdmin, accounts, logger);

  // Headers an API should send (nosniff, no framing, no referrer, a CSP that allows nothing: latchkey
  // never serves a page). HSTS only where the cookies are Secure, i.e. outside plain-http development.
  const security = securityHeaders({
    contentSecurityPolicy: { useDefaults: false, directives: { defaultSrc: ["'none'"], frameAncestors: ["'none'"] } },
    strictTransportSecurity: config.cookie.secure ? { maxAge: 31_536_000 } : false,
    crossOriginResourcePolicy: { policy: 'same-site' },
  });
  const app = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    bodyLimit: config.bodyLimit,
    trustProxy: trustProxyOption(config),
    return503OnClosing: true,
    childLoggerFactory: lazyChildLogger,
    // Errors the router raises before any route runs (a malformed %-escape in the path) get the contract
    // shape too, without echoing the path.
    frameworkErrors: (_err, _request, reply) => {
      // No hook runs for these: the security headers are set here.
      void (reply as unknown as FastifyReply).headers(security).code(400).send(new ApiError('invalid_request', 'The request URL is malformed.').toBody());
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
  const services: AppServices = { ...core, keys, issuer, bearer, metrics, throttles };
  app.decorate('latchkey', services);
  app.addHook('onClose', async () => keys.stop());
  app.addHook('onClose', async () => {
    await core.resets.flush();
    await audit.flush();
    core.mailer?.close();
  });
  if (decided) app.addHook('onClose', async () => decided.close());
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
  // The security headers (above) on every answer but forward auth's 200: errors, 404s and CORS preflights
  // included, however they were answered (malformed URLs: frameworkErrors).
  app.addHook('onSend', (request, reply, payload, done) => {
    if (request.routeOptions.config.forwardAuth !== true || reply.statusCode !== 200) reply.headers(security);
    done(null, payload);
  });
  // Callback hooks on every request: an async one costs a promise per request.
  app.addHook('onResponse', (request, reply, done) => {
    metrics.request(request.method, request.routeOptions.url ?? 'unmatched', reply.statusCode, reply.elapsedTime / 1000);
    done();
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
  // A hook of the attempt-counted routes alone, so that no other request pays for it.
  const throttled = attemptThrottle(throttles, events);
  app.addHook('onRoute', (route) => {
    if (route.config?.throttle !== 'attempt') return;
    const own = route.onRequest === undefined ? [] : Array.isArray(route.onRequest) ? route.onRequest : [route.onRequest];
    route.onRequest = [...own, throttled];
  });
  await app.register(
    async (scope) => {
      await scope.register(accountRoutes, { accounts, config });
      await scope.register(tokenRoutes, { accounts, issuer, revocations, bearer, clients, config });
      await scope.register(passwordRoutes, { accounts, issuer, bearer, resets: core.resets, store, config, clock });
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

export interface CoreOptions {
  store: Store;
  clock: () => number;
  logger: Logger;
  onEvent?: AuthEventListener;
  /** The public app's own: its metrics watch the hasher's queue and the revocation stream. */
  hasher?: PasswordHasher;
  metrics?: Metrics;
  throttles?: Throttles;
}

/** Builds what the public app, the admin app and the CLI share, on a store that is already open. */
export async function buildCoreServices(
  config: Config,
  { store, clock, logger, onEvent, metrics, throttles, ...given }: CoreOptions,
): Promise<CoreServices> {
  const log = logger;
  const horizonMs = revocationHorizonMs(config);
  const hasher = given.hasher ?? new PasswordHasher(config.argon2, config.hashConcurrency, config.hashQueue);
  const events = new EventBus(logger);
  const audit = new AuditTrail({ store, log, clock, retention: config.audit, key: config.audit.key });
  await audit.init();
  events.on(audit.record);
  if (onEvent) events.on(onEvent);
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
  const emailHash = (email: string) => audit.emailHash(email);
  const accounts = new Accounts({ store, hasher, revocations, events, emailHash, clock, log, throttles });
  const adminKeys = new AdminKeys({ store, events, clock });
  const mailer = await createMailer(config.passwordReset);
  const resets = new PasswordResets({
    store,
    accounts,
    events,
    emailHash,
    mailer,
    refuseWithoutMail: config.env === 'production',
    ttlSeconds: config.passwordReset.tokenTtl,
    url: config.passwordReset.url,
    clock,
    log,
  });
  return { store, events, audit, revocations, hasher, accounts, adminKeys, resets, mailer, clock, log };
}

/**
 * The first admin without the CLI (which needs Redis): LATCHKEY_BOOTSTRAP_ADMIN_EMAIL and a file holding
 * the password. Creates the account with role `admin` only if no account has the address; never changes
 * an existing one.
 */
async function bootstrapAdmin(spec: { email: string; passwordFile: string }, accounts: Accounts, log: Logger): Promise<void> {
  const password = (await readFile(spec.passwordFile, 'utf8')).replace(/\r?\n$/, '');
  if (await accounts.findByEmail(spec.email)) {
    log.info('bootstrap admin: an account with this address exists; left as it is');
    return;
  }
  const user = await accounts.register(spec.email, password, systemContext('system:bootstrap'), ['admin']).catch((err: Error) => {
    throw new StartupError(`LATCHKEY_BOOTSTRAP_ADMIN_PASSWORD_FILE: ${err.message.replace(/^invalid_request: /, '')}`);
  });
  log.warn({ userId: user.id }, 'bootstrap admin created; remove LATCHKEY_BOOTSTRAP_ADMIN_* from the environment');
}

/** A hop count as proxy-addr reads it: the nearest n peers are proxies (Fastify's types lack the number form). */
export function trustProxyOption(config: Config): string | boolean | string[] | ((address: string, hop: number) => boolean) {
  const trust = config.trustProxy;
  return typeof trust === 'number' ? (_address: string, hop: number) => hop < trust : trust;
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
export function toApiError(err: FastifyError, log: FastifyBaseLogger, metrics: Metrics): ApiError {
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
