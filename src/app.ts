import fastifyRateLimit from '@fastify/rate-limit';
import Fastify, { type FastifyBaseLogger, type FastifyError, type FastifyInstance } from 'fastify';
import pino, { type Logger } from 'pino';
import { readFile } from 'node:fs/promises';
import { Accounts } from './accounts/accounts.js';
import { PasswordResets } from './accounts/password-reset.js';
import { PasswordHasher } from './accounts/passwords.js';
import { AdminKeys } from './admin/admin-keys.js';
import { AuditTrail } from './audit/audit.js';
import { runWithContext } from './audit/context.js';
import { createMailer, type Mailer } from './mail/mailer.js';
import type { Config } from './config.js';
import { ApiError, StoreUnavailableError, unavailable } from './errors.js';
import { KeyStore } from './keys/keystore.js';
import { EventBus, type AuthEvent } from './events.js';
import { loggerOptions } from './logger.js';
import { Metrics } from './metrics.js';
import { accountRoutes } from './routes/accounts.js';
import { clientContext } from './routes/common.js';
import { passwordRoutes } from './routes/password.js';
import { metaRoutes } from './routes/meta.js';
import { sessionRoutes } from './routes/sessions.js';
import { tokenRoutes } from './routes/tokens.js';
import { verifyRoutes } from './routes/verify.js';
import { MemoryStore } from './store/memory-store.js';
import { RedisStore } from './store/redis-store.js';
import type { Store } from './store/store.js';
import { AccessTokens, NoSigningKeyError } from './tokens/access-token.js';
import { BearerAuth } from './tokens/bearer.js';
import { TokenIssuer } from './tokens/issuer.js';
import { Revocations } from './tokens/revocation.js';

export interface AppOverrides {
  /** A store to use instead of the configured one (the app will not close it). */
  store?: Store;
  /** Epoch milliseconds; tests pass a controllable clock. */
  clock?: () => number;
  logger?: Logger;
  onEvent?: (event: AuthEvent) => void;
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
}

/**
 * Margin for clock drift between instances and verifiers, in seconds. A revocation fact, a deny-list
 * entry or a cached decision must outlive the latest moment any checker still accepts the token:
 * `exp` + the allowed skew + this margin (PRODUCT.md "Revocation that resource servers can see").
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
  const core = await buildCoreServices(config, { store, clock, logger, onEvent: overrides.onEvent });
  const { events, revocations, accounts, hasher, audit } = core;
  const metrics = new Metrics({ hasher, keys, clock });
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
    policy: {
      refreshTtlSeconds: config.refreshTokenTtl,
      sessionMaxTtlSeconds: config.sessionMaxTtl,
      graceSeconds: config.refreshGrace,
      maxSessionsPerUser: config.maxSessionsPerUser,
    },
  });
  const bearer = new BearerAuth({ store, access, clock, log });
  if (!core.mailer) {
    logger.warn(
      config.env === 'production'
        ? 'PASSWORD RESET MAIL IS OFF: no LATCHKEY_SMTP_URL; POST /password/forgot answers 503 until one is set'
        : 'PASSWORD RESET MAIL IS OFF: no LATCHKEY_SMTP_URL; POST /password/forgot answers 202 but sends nothing',
    );
  }
  if (config.bootstrapAdmin) await bootstrapAdmin(config.bootstrapAdmin, accounts, logger);

  const app = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    bodyLimit: config.bodyLimit,
    trustProxy: config.trustProxy,
    return503OnClosing: true,
  });
  const services: AppServices = { ...core, keys, issuer, bearer, metrics };
  app.decorate('latchkey', services);
  app.addHook('onClose', async () => keys.stop());
  app.addHook('onClose', async () => {
    await core.resets.flush();
    await audit.flush();
    core.mailer?.close();
  });
  if (!overrides.store) app.addHook('onClose', async () => store.close());
  withActionContext(app);

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

  // Per-instance, in-memory counters: a brake on password guessing from one address. Account-wide
  // throttling across instances would need a shared store and is not attempted here.
  await app.register(fastifyRateLimit, {
    global: false,
    errorResponseBuilder: (_request, context) =>
      new ApiError('rate_limited', 'Too many attempts; retry later.', {
        'retry-after': String(Math.max(1, Math.ceil(context.ttl / 1000))),
      }),
  });
  await app.register(
    async (scope) => {
      await scope.register(accountRoutes, { accounts, config });
      await scope.register(tokenRoutes, { accounts, issuer, revocations, bearer, config });
      await scope.register(passwordRoutes, { accounts, issuer, bearer, resets: core.resets, store, config, clock });
      await scope.register(sessionRoutes, { bearer, revocations, store, clock });
      await scope.register(verifyRoutes, { bearer, config });
      await scope.register(metaRoutes, { config, keys, store, clock });
    },
    { prefix: config.basePath },
  );
  return app;
}

export interface CoreOptions {
  store: Store;
  clock: () => number;
  logger: Logger;
  onEvent?: (event: AuthEvent) => void;
}

/** Builds what the public app, the admin app and the CLI share, on a store that is already open. */
export async function buildCoreServices(config: Config, { store, clock, logger, onEvent }: CoreOptions): Promise<CoreServices> {
  const log = logger;
  const horizonMs = (config.accessTokenTtl + config.clockSkew + CLOCK_DRIFT_MARGIN_SECONDS) * 1000;
  const hasher = new PasswordHasher(config.argon2, config.hashConcurrency, config.hashQueue);
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
  });
  const emailHash = (email: string) => audit.emailHash(email);
  const accounts = new Accounts({ store, hasher, revocations, events, emailHash, clock, log });
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
 * Every request runs in an action context (src/audit/context.ts): the audit trail learns its IP, user
 * agent and request id without services passing them along. Entered after the body is parsed, so the
 * handler and everything it starts run inside it.
 */
export function withActionContext(app: FastifyInstance): void {
  app.addHook('preValidation', (request, _reply, done) => {
    const { ip, userAgent } = clientContext(request);
    runWithContext({ ip, userAgent, requestId: String(request.id) }, done);
  });
}

/**
 * The first admin without the CLI (which needs Redis): LATCHKEY_BOOTSTRAP_ADMIN_EMAIL and a file holding
 * the password. Creates the account with role `admin` only if no account has the address; never changes
 * an existing one.
 */
async function bootstrapAdmin(spec: { email: string; passwordFile: string }, accounts: Accounts, log: Logger): Promise<void> {
  const password = (await readFile(spec.passwordFile, 'utf8')).replace(/\r?\n$/, '');
  await runWithContext({ actor: 'system:bootstrap', ip: null, userAgent: null, requestId: null }, async () => {
    if (await accounts.findByEmail(spec.email)) {
      log.info('bootstrap admin: an account with this address exists; left as it is');
      return;
    }
    const user = await accounts.register(spec.email, password, ['admin']).catch((err: Error) => {
      throw new StartupError(`LATCHKEY_BOOTSTRAP_ADMIN_PASSWORD_FILE: ${err.message.replace(/^invalid_request: /, '')}`);
    });
    log.warn({ userId: user.id }, 'bootstrap admin created; remove LATCHKEY_BOOTSTRAP_ADMIN_* from the environment');
  });
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
