import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { availableParallelism } from 'node:os';
import { z } from 'zod';

/**
 * Every setting latchkey reads, validated once at start-up. Only this module looks at the environment;
 * `loadConfig` is pure, so tests build a config from a plain object.
 */

const bool = (fallback: boolean) =>
  z
    .enum(['true', 'false', '1', '0', 'yes', 'no'])
    .optional()
    .transform((v) => (v === undefined ? fallback : v === 'true' || v === '1' || v === 'yes'));

const seconds = (fallback: number, min = 1) => z.coerce.number().int().min(min).default(fallback);

const origin = z.string().transform((value, ctx) => {
  try {
    const url = new URL(value);
    if (url.origin === 'null' || url.origin !== value.replace(/\/$/, '')) throw new Error('not an origin');
    return url.origin;
  } catch {
    ctx.addIssue({ code: 'custom', message: `"${value}" is not an origin like https://app.example.com` });
    return z.NEVER;
  }
});

const basePath = z
  .string()
  .default('')
  .refine((v) => v === '' || /^\/[A-Za-z0-9._~-]+(\/[A-Za-z0-9._~-]+)*$/.test(v), {
    message: 'must be empty or a path like /auth (leading slash, no trailing slash)',
  });

/**
 * Which peers may set X-Forwarded-For (RFC 7239 §8.3: a client can send the header too, so only named
 * proxies are believed): a hop count, or addresses and CIDRs (with proxy-addr's names `loopback`,
 * `linklocal`, `uniquelocal`). `true` would believe anyone: outside production it means `loopback`,
 * in production it is refused.
 */
const proxyNames = new Set(['loopback', 'linklocal', 'uniquelocal']);
const trustProxy = z
  .string()
  .optional()
  .transform((v, ctx): false | number | string[] | 'true' => {
    const value = (v ?? 'false').trim();
    if (['false', '0', 'no', ''].includes(value)) return false;
    if (['true', 'yes'].includes(value)) return 'true';
    if (/^[1-9][0-9]?$/.test(value)) return Number(value);
    const entries = value.split(',').map((e) => e.trim()).filter(Boolean);
    const bad = entries.filter((e) => !proxyNames.has(e) && !isCidr(e));
    if (bad.length > 0) {
      ctx.addIssue({ code: 'custom', message: `must be false, a hop count (1-99), or proxy addresses/CIDRs; not ${bad.map((b) => JSON.stringify(b.slice(0, 50))).join(', ')}` });
      return z.NEVER;
    }
    return entries;
  });

function isCidr(entry: string): boolean {
  const [addr = '', prefix, extra] = entry.split('/');
  const family = isIP(addr);
  if (family === 0 || extra !== undefined) return false;
  if (prefix === undefined) return true;
  return /^[0-9]{1,3}$/.test(prefix) && Number(prefix) <= (family === 4 ? 32 : 128);
}

/** A limit per window; 0 turns it off. */
const limit = (fallback: number) => z.coerce.number().int().min(0).max(1_000_000).default(fallback);
const millis = (fallback: number, min = 0) => z.coerce.number().int().min(min).max(3_600_000).default(fallback);

const redisUrl = /^rediss?:\/\/[^\s,]+$/;
const redisUrls = z
  .string()
  .transform((v) => v.split(',').map((u) => u.trim()).filter(Boolean))
  .refine((urls) => urls.length > 0 && urls.every((u) => redisUrl.test(u)), 'must be comma-separated redis:// or rediss:// URLs');

/**
 * Header names `/verify` answers with: lower-case RFC 9110 field names (tokens), so a gateway can be told
 * which to copy upstream.
 */
const headerName = z
  .string()
  .regex(/^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/, 'must be an HTTP header name')
  .transform((v) => v.toLowerCase());

/** A client of latchkey (RFC 9068 §2.2 `client_id`): which channels it may use, and from which origins. */
export interface ClientRegistration {
  id: string;
  channels: ('browser' | 'native')[];
  /** Browser origins it may use; empty: any of LATCHKEY_ALLOWED_ORIGINS. */
  origins: string[];
}

/** The clients every deployment has: requests that name no client get the one for their channel. */
export const DEFAULT_CLIENTS = { browser: 'latchkey-browser', native: 'latchkey-native' } as const;

const clientId = z.string().regex(/^[A-Za-z0-9._~-]{1,64}$/, 'client ids are 1–64 characters of A–Z a–z 0–9 . _ ~ -');

/**
 * LATCHKEY_CLIENTS: `id:channels[:origins]` entries separated by `;`, channels and origins separated by
 * `,` — e.g. `web:browser:https://app.example.com;ios:native`. Only the first two `:` separate fields,
 * so origins keep theirs.
 */
const clients = z
  .string()
  .transform((value) =>
    value
      .split(';')
      .map((entry) => entry.trim())
      .filter(Boolean)
      .map((entry) => {
        const [id = '', channels = '', ...rest] = entry.split(':');
        const origins = rest.join(':');
        return {
          id: id.trim(),
          channels: channels.split(',').map((c) => c.trim()).filter(Boolean),
          origins: origins ? origins.split(',').map((o) => o.trim()).filter(Boolean) : [],
        };
      }),
  )
  .pipe(
    z
      .array(
        z.object({
          id: clientId,
          channels: z.array(z.enum(['browser', 'native'])).min(1, 'name at least one channel: browser, native'),
          origins: z.array(origin),
        }),
      )
      .min(1)
      .refine((list) => new Set(list.map((c) => c.id)).size === list.length, 'client ids must be unique'),
  );

/** Where Redis is: one node, a master found through Sentinel, or a Cluster. */
export type RedisTopology =
  | { url: string; username?: string; password?: string }
  | { sentinel: { sentinels: string[]; master: string; username?: string; password?: string } }
  | { cluster: { nodes: string[] } };

const schema = z
  .object({
    NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
    HOST: z.string().min(1).default('127.0.0.1'),
    PORT: z.coerce.number().int().min(0).max(65535).default(3000),
    // Prometheus metrics on a port of their own (0 turns them off), so they are never public with the API.
    LATCHKEY_METRICS_PORT: z.coerce.number().int().min(0).max(65535).default(9464),
    LATCHKEY_METRICS_HOST: z.string().min(1).optional(),
    // The admin API on a port of its own (0 turns it off), never on the public API port.
    LATCHKEY_ADMIN_PORT: z.coerce.number().int().min(0).max(65535).default(3001),
    LATCHKEY_ADMIN_HOST: z.string().min(1).optional(),
    LATCHKEY_AUDIT_RETENTION_DAYS: z.coerce.number().min(1).max(3650).default(30),
    LATCHKEY_AUDIT_MAX_ENTRIES: z.coerce.number().int().min(100).max(100_000_000).default(100_000),
    LATCHKEY_AUDIT_KEY: z.string().min(32, 'must be at least 32 characters').optional(),
    LATCHKEY_RESET_TOKEN_TTL: seconds(1800, 60).refine((v) => v <= 86_400, 'must be at most 86400 (1 day)'),
    LATCHKEY_RESET_URL: z
      .string()
      .optional()
      .refine((v) => v === undefined || (v.includes('{token}') && /^https?:\/\//.test(v)), 'must be an http(s) URL containing {token}'),
    LATCHKEY_SMTP_URL: z
      .string()
      .optional()
      .refine((v) => v === undefined || /^smtps?:\/\/\S+$/.test(v), 'must be an smtp:// or smtps:// URL, without spaces'),
    LATCHKEY_MAIL_FROM: z.string().min(3).optional(),
    LATCHKEY_BOOTSTRAP_ADMIN_EMAIL: z.string().min(3).optional(),
    LATCHKEY_BOOTSTRAP_ADMIN_PASSWORD_FILE: z.string().min(1).optional(),
    LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    TRUST_PROXY: trustProxy,
    LATCHKEY_ISSUER: z.url({ protocol: /^https?$/ }).optional(),
    LATCHKEY_AUDIENCE: z.string().min(1).optional(),
    LATCHKEY_BASE_PATH: basePath,
    LATCHKEY_ALLOWED_ORIGINS: z
      .string()
      .optional()
      .transform((v) => (v ? v.split(',').map((s) => s.trim()).filter(Boolean) : undefined))
      .pipe(z.array(origin).optional()),
    // Origins of hybrid apps (a web view that sends an Origin, such as capacitor://localhost) that may
    // receive a refresh token in a body; every other request carrying an Origin is a browser's.
    LATCHKEY_NATIVE_ORIGINS: z
      .string()
      .optional()
      .transform((v) => (v ? v.split(',').map((s) => s.trim()).filter(Boolean) : []))
      .pipe(z.array(z.string().regex(/^[a-z][a-z0-9+.-]*:\/\/[^\s/,]+$/, 'must be origins like capacitor://localhost'))),
    LATCHKEY_REGISTRATION: bool(true),
    LATCHKEY_ACCESS_TOKEN_TTL: seconds(900, 60).refine((v) => v <= 86_400, 'must be at most 86400 (1 day)'),
    LATCHKEY_REFRESH_TOKEN_TTL: seconds(7 * 86_400, 60),
    LATCHKEY_SESSION_MAX_TTL: seconds(30 * 86_400, 60),
    LATCHKEY_REFRESH_GRACE: seconds(10, 0).refine((v) => v <= 300, 'must be at most 300 seconds'),
    LATCHKEY_MAX_SESSIONS_PER_USER: z.coerce.number().int().min(1).max(1000).default(50),
    LATCHKEY_COOKIE_INSECURE_DEV: bool(false),
    LATCHKEY_JWKS_MAX_AGE: seconds(300, 0),
    LATCHKEY_CLOCK_SKEW: seconds(5, 0).refine((v) => v <= 30, 'must be at most 30 seconds'),
    LATCHKEY_BODY_LIMIT: z.coerce.number().int().min(512).max(65_536).default(4096),
    LATCHKEY_KEYS_DIR: z.string().min(1).default('keys'),
    LATCHKEY_KEY_ACTIVATION_DELAY: z.coerce.number().int().min(0).optional(),
    LATCHKEY_KEYS_RESCAN: seconds(5, 1),
    LATCHKEY_ARGON2_MEMORY_KIB: z.coerce.number().int().min(19_456).default(19_456),
    LATCHKEY_ARGON2_ITERATIONS: z.coerce.number().int().min(2).default(2),
    LATCHKEY_ARGON2_PARALLELISM: z.coerce.number().int().min(1).max(16).default(1),
    LATCHKEY_CLIENTS: clients.optional(),
    // Forward auth (GET /verify and friends): the response headers that carry the user to the upstream.
    LATCHKEY_VERIFY_USER_HEADER: headerName.default('x-user-id'),
    LATCHKEY_VERIFY_ROLES_HEADER: headerName.default('x-user-roles'),
    LATCHKEY_VERIFY_SESSION_HEADER: headerName.default('x-session-id'),
    LATCHKEY_VERIFY_CLIENT_HEADER: headerName.default('x-client-id'),
    // Off unless named: the e-mail costs a store read per request and is personal data.
    LATCHKEY_VERIFY_EMAIL_HEADER: headerName.optional(),
    LATCHKEY_VERIFY_FAIL_OPEN: seconds(0, 0).refine((v) => v <= 300, 'must be at most 300 seconds'),
    // Tokens forward auth remembers (≈ 1.5 KiB each with the token string and its claims).
    LATCHKEY_VERIFY_CACHE_SIZE: z.coerce.number().int().min(1).max(10_000_000).default(50_000),
    // Throttles live in the store, so every instance shares them (see README "Abuse resistance").
    LATCHKEY_LOGIN_RATE_LIMIT: limit(30),
    LATCHKEY_ACCOUNT_RATE_LIMIT: limit(10),
    LATCHKEY_ACCOUNT_RATE_WINDOW: seconds(900, 1).refine((v) => v <= 86_400, 'must be at most 86400 (1 day)'),
    LATCHKEY_GLOBAL_LOGIN_RATE_LIMIT: limit(100),
    LATCHKEY_REFRESH_RATE_LIMIT: limit(600),
    LATCHKEY_SESSION_REFRESH_RATE_LIMIT: limit(30),
    // Slow clients: a request must arrive whole within the request timeout, its headers within the
    // headers timeout; idle keep-alive connections close after the keep-alive timeout.
    LATCHKEY_REQUEST_TIMEOUT_MS: millis(10_000, 100),
    LATCHKEY_HEADERS_TIMEOUT_MS: millis(5_000, 100),
    LATCHKEY_KEEP_ALIVE_TIMEOUT_MS: millis(72_000, 100),
    LATCHKEY_MAX_CONNECTIONS: z.coerce.number().int().min(0).max(1_000_000).default(10_000),
    LATCHKEY_MAX_REQUESTS_PER_SOCKET: z.coerce.number().int().min(0).max(1_000_000).default(0),
    // argon2id is CPU-bound: more hashes at once than cores only adds switching and cache misses.
    LATCHKEY_HASH_CONCURRENCY: z.coerce.number().int().min(1).max(64).default(Math.min(4, availableParallelism())),
    LATCHKEY_HASH_QUEUE: z.coerce.number().int().min(0).max(10_000).default(64),
    // libuv's own variable, read here only to check it against the hash concurrency; libuv reads it once,
    // before any code of ours runs, so it must come from the environment.
    UV_THREADPOOL_SIZE: z.coerce.number().int().min(1).max(1024).default(4),
    REDIS_URL: z
      .string()
      .optional()
      .refine((v) => v === undefined || /^rediss?:\/\//.test(v), 'must start with redis:// or rediss://'),
    // Sentinel: the sentinels' URLs (their own credentials in the URL) and the master's name; the master's
    // credentials come from REDIS_USERNAME / REDIS_PASSWORD.
    REDIS_SENTINELS: redisUrls.optional(),
    REDIS_SENTINEL_MASTER: z.string().min(1).optional(),
    // Cluster: seed nodes; credentials and TLS (rediss://) are taken from the first URL.
    REDIS_CLUSTER_NODES: redisUrls.optional(),
    REDIS_USERNAME: z.string().min(1).optional(),
    REDIS_PASSWORD: z.string().min(1).optional(),
    // Revocations are confirmed (2xx) only once this many replicas hold them, so a failover cannot
    // revive a revoked session; 0 does not wait. Not with Cluster.
    REDIS_REPLICAS_TO_ACK: z.coerce.number().int().min(0).max(16).default(0),
    REDIS_REPLICA_ACK_TIMEOUT_MS: z.coerce.number().int().min(10).max(10_000).default(500),
    REDIS_KEY_PREFIX: z.string().max(64).default('lk:'),
    REDIS_COMMAND_TIMEOUT_MS: z.coerce.number().int().min(50).max(60_000).default(1000),
    // OpenTelemetry's own variables (src/tracing.ts): traces are exported only when an endpoint is set.
    OTEL_EXPORTER_OTLP_ENDPOINT: z.url().optional(),
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: z.url().optional(),
    OTEL_SDK_DISABLED: bool(false),
    OTEL_SERVICE_NAME: z.string().min(1).default('latchkey'),
  })
  .superRefine((env, ctx) => {
    const prod = env.NODE_ENV === 'production';
    const need = (path: string, message: string) => ctx.addIssue({ code: 'custom', path: [path], message });
    if (prod && !env.LATCHKEY_ISSUER) need('LATCHKEY_ISSUER', 'is required when NODE_ENV=production');
    const topologies = [env.REDIS_URL, env.REDIS_SENTINELS, env.REDIS_CLUSTER_NODES].filter((v) => v !== undefined).length;
    if (prod && topologies === 0) {
      need('REDIS_URL', 'is required when NODE_ENV=production, or REDIS_SENTINELS or REDIS_CLUSTER_NODES (the embedded store is for development only)');
    }
    if (topologies > 1) need('REDIS_URL', 'set only one of REDIS_URL, REDIS_SENTINELS and REDIS_CLUSTER_NODES');
    if (env.REDIS_SENTINELS && !env.REDIS_SENTINEL_MASTER) need('REDIS_SENTINEL_MASTER', 'is required with REDIS_SENTINELS');
    if (env.REDIS_CLUSTER_NODES && env.REDIS_REPLICAS_TO_ACK > 0) need('REDIS_REPLICAS_TO_ACK', 'is not supported with REDIS_CLUSTER_NODES');
    if (prod && env.LATCHKEY_COOKIE_INSECURE_DEV) need('LATCHKEY_COOKIE_INSECURE_DEV', 'must not be set when NODE_ENV=production');
    if (env.LATCHKEY_KEY_ACTIVATION_DELAY !== undefined && env.LATCHKEY_KEY_ACTIVATION_DELAY < env.LATCHKEY_JWKS_MAX_AGE)
      need('LATCHKEY_KEY_ACTIVATION_DELAY', 'must be at least LATCHKEY_JWKS_MAX_AGE, or cached key sets could miss a new key');
    if (prod && env.TRUST_PROXY === 'true') {
      need('TRUST_PROXY', 'true would believe X-Forwarded-For from anyone; name the proxies (addresses or CIDRs) or a hop count');
    }
    if (env.LATCHKEY_HEADERS_TIMEOUT_MS > env.LATCHKEY_REQUEST_TIMEOUT_MS)
      need('LATCHKEY_HEADERS_TIMEOUT_MS', 'must not exceed LATCHKEY_REQUEST_TIMEOUT_MS');
    if (!!env.LATCHKEY_BOOTSTRAP_ADMIN_EMAIL !== !!env.LATCHKEY_BOOTSTRAP_ADMIN_PASSWORD_FILE)
      need('LATCHKEY_BOOTSTRAP_ADMIN_PASSWORD_FILE', 'LATCHKEY_BOOTSTRAP_ADMIN_EMAIL and LATCHKEY_BOOTSTRAP_ADMIN_PASSWORD_FILE go together');
    if (env.LATCHKEY_REFRESH_TOKEN_TTL > env.LATCHKEY_SESSION_MAX_TTL)
      need('LATCHKEY_REFRESH_TOKEN_TTL', 'must not exceed LATCHKEY_SESSION_MAX_TTL');
    const verifyHeaders = [
      env.LATCHKEY_VERIFY_USER_HEADER,
      env.LATCHKEY_VERIFY_ROLES_HEADER,
      env.LATCHKEY_VERIFY_SESSION_HEADER,
      env.LATCHKEY_VERIFY_CLIENT_HEADER,
      env.LATCHKEY_VERIFY_EMAIL_HEADER,
    ].filter((h) => h !== undefined);
    if (new Set(verifyHeaders).size !== verifyHeaders.length) need('LATCHKEY_VERIFY_USER_HEADER', 'the /verify header names must differ');
    for (const client of env.LATCHKEY_CLIENTS ?? []) {
      // A client's origins narrow the allow-list; they never widen it (CORS and the Origin check use it).
      const allowed = env.LATCHKEY_ALLOWED_ORIGINS ?? [new URL(env.LATCHKEY_ISSUER ?? `http://localhost:${env.PORT}`).origin];
      const outside = client.origins.filter((o) => !allowed.includes(o));
      if (outside.length > 0) need('LATCHKEY_CLIENTS', `client ${client.id}: ${outside.join(', ')} not in LATCHKEY_ALLOWED_ORIGINS`);
      if (client.origins.length > 0 && !client.channels.includes('browser')) {
        need('LATCHKEY_CLIENTS', `client ${client.id}: origins only apply to the browser channel`);
      }
    }
  });

export type Env = z.input<typeof schema>;

export interface Config {
  env: 'development' | 'production' | 'test';
  host: string;
  /** Where GET /metrics listens; null when turned off. */
  metrics: { host: string; port: number } | null;
  /** Where the admin API listens; null when turned off. */
  admin: { host: string; port: number } | null;
  audit: { maxAgeMs: number; maxEntries: number; key?: string };
  passwordReset: {
    tokenTtl: number;
    /** The link mailed to the user; `{token}` is replaced by the reset token. */
    url: string;
    /** SMTP (LATCHKEY_SMTP_URL, or the file LATCHKEY_SMTP_URL_FILE names: FILE_VARIABLES); none = reset mail is off. */
    smtpUrl?: string;
    from: string;
  };
  /** Creates this admin at start-up when no account has the address (the first admin without a CLI). */
  bootstrapAdmin: { email: string; passwordFile: string } | null;
  port: number;
  logLevel: string;
  /** Fastify's trustProxy: false, a hop count, or the proxies' addresses and CIDRs. Never `true`. */
  trustProxy: false | number | string;
  issuer: string;
  audience: string;
  basePath: string;
  /** Origins that may use cookie sessions, and get CORS with credentials. */
  allowedOrigins: string[];
  /** Origins that may receive a refresh token in a body (hybrid apps); they get CORS too. */
  nativeOrigins: string[];
  registration: boolean;
  accessTokenTtl: number;
  refreshTokenTtl: number;
  sessionMaxTtl: number;
  refreshGrace: number;
  maxSessionsPerUser: number;
  cookie: { name: string; path: string; secure: boolean };
  jwksMaxAge: number;
  clockSkew: number;
  bodyLimit: number;
  keysDir: string;
  /** Seconds between re-reads of the key folder (a watch reacts sooner). */
  keysRescan: number;
  /** Rotation: seconds from a new key's publication to its first signature. */
  keyActivationDelay: number;
  /** Rotation: seconds a retired key stays published (its tokens' lifetime plus skew and margin). */
  keyRetention: number;
  argon2: { memoryCost: number; timeCost: number; parallelism: number };
  /** Known clients (RFC 9068 `client_id`), the defaults for each channel included. */
  clients: ClientRegistration[];
  /** Response headers of forward auth; `email` null when the e-mail is not sent. */
  verifyHeaders: { user: string; roles: string; session: string; client: string; email: string | null };
  /** GET /verify while the store is unreachable: 0 refuses (503); N accepts signed tokens for N seconds. */
  verifyFailOpen: number;
  /** How many decided tokens forward auth remembers. */
  verifyCacheSize: number;
  /** Login and registration attempts per client IP per minute; 0 turns the limit off. */
  loginRateLimit: number;
  /** Throttles kept in the store (shared by every instance); a 0 turns that one off. */
  throttle: {
    /** Failed logins per account (normalised e-mail) per `accountWindow` seconds. */
    account: number;
    accountWindow: number;
    /** Login attempts per second across every instance and client. */
    globalLogin: number;
    /** Refreshes per client IP per minute. */
    refreshIp: number;
    /** Refreshes per session per minute. */
    refreshSession: number;
  };
  /** Slow-client limits of the HTTP server (ms; connections). */
  server: {
    requestTimeoutMs: number;
    headersTimeoutMs: number;
    keepAliveTimeoutMs: number;
    maxConnections: number;
    maxRequestsPerSocket: number;
  };
  hashConcurrency: number;
  hashQueue: number;
  /** libuv's thread pool: argon2 hashes and RS256 signatures both run on it. */
  threadPoolSize: number;
  /** OpenTelemetry traces; null when no OTLP endpoint is configured. */
  tracing: { serviceName: string } | null;
  redis: ({ keyPrefix: string; commandTimeoutMs: number; replicasToAck: number; replicaAckTimeoutMs: number } & RedisTopology) | null;
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

/**
 * The refresh cookie. `__Host-` needs `Path=/` and no Domain; under a base path the narrower path needs
 * `__Secure-` instead. Without `Secure` (plain-http localhost development) neither prefix is allowed.
 */
function cookieFor(basePath: string, secure: boolean): Config['cookie'] {
  const path = basePath || '/';
  const prefix = !secure ? '' : path === '/' ? '__Host-' : '__Secure-';
  return { name: `${prefix}lk_rt`, path, secure };
}

/**
 * Secrets that may also be read from a file (`<NAME>_FILE`, the Docker and Kubernetes secrets convention):
 * the file's content, without its final line break, becomes the value. Add a variable here to give it a
 * `_FILE` variant.
 */
export const FILE_VARIABLES: readonly string[] = ['REDIS_PASSWORD', 'LATCHKEY_SMTP_URL'];

export interface LoadOptions {
  /** Reads a `*_FILE` secret; tests pass a fake. */
  readFile?: (path: string) => string;
}

/** Replaces every `<NAME>_FILE` of FILE_VARIABLES by `<NAME>` with the file's content. */
function resolveFileVariables(env: Record<string, string | undefined>, readFile: (path: string) => string) {
  const out = { ...env };
  const problems: string[] = [];
  for (const name of FILE_VARIABLES) {
    const path = env[`${name}_FILE`];
    if (path === undefined || path === '') continue;
    if (env[name] !== undefined) {
      problems.push(`${name}_FILE: set ${name} or ${name}_FILE, not both`);
      continue;
    }
    try {
      out[name] = readFile(path).replace(/\r?\n$/, '');
    } catch (err) {
      // The path is not secret; the content never reaches a message.
      problems.push(`${name}_FILE: cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
    }
    delete out[`${name}_FILE`];
  }
  return { env: out, problems };
}

/** Validates `env` and reports every bad variable at once. Throws ConfigError. */
export function loadConfig(rawEnv: Record<string, string | undefined>, options: LoadOptions = {}): Config {
  const files = resolveFileVariables(rawEnv, options.readFile ?? ((path) => readFileSync(path, 'utf8')));
  if (files.problems.length > 0) throw new ConfigError(files.problems);
  const env = files.env;
  const parsed = schema.safeParse(env);
  if (!parsed.success) {
    throw new ConfigError(
      parsed.error.issues.map((issue) => `${issue.path.join('.') || 'environment'}: ${issue.message}`),
    );
  }
  const e = parsed.data;
  if (e.LATCHKEY_METRICS_PORT !== 0 && e.LATCHKEY_METRICS_PORT === e.PORT) {
    throw new ConfigError(['LATCHKEY_METRICS_PORT: must differ from PORT; metrics never share the API port (0 turns them off)']);
  }
  if (e.LATCHKEY_ADMIN_PORT !== 0 && (e.LATCHKEY_ADMIN_PORT === e.PORT || e.LATCHKEY_ADMIN_PORT === e.LATCHKEY_METRICS_PORT)) {
    throw new ConfigError(['LATCHKEY_ADMIN_PORT: must differ from PORT and LATCHKEY_METRICS_PORT; the admin API never shares a port (0 turns it off)']);
  }
  const port = e.PORT;
  const issuer = (e.LATCHKEY_ISSUER ?? `http://localhost:${port}`).replace(/\/$/, '');
  const secure = !e.LATCHKEY_COOKIE_INSECURE_DEV;
  return {
    env: e.NODE_ENV,
    host: e.HOST,
    metrics: e.LATCHKEY_METRICS_PORT > 0 ? { host: e.LATCHKEY_METRICS_HOST ?? e.HOST, port: e.LATCHKEY_METRICS_PORT } : null,
    admin: e.LATCHKEY_ADMIN_PORT > 0 ? { host: e.LATCHKEY_ADMIN_HOST ?? e.HOST, port: e.LATCHKEY_ADMIN_PORT } : null,
    audit: {
      maxAgeMs: Math.round(e.LATCHKEY_AUDIT_RETENTION_DAYS * 86_400_000),
      maxEntries: e.LATCHKEY_AUDIT_MAX_ENTRIES,
      ...(e.LATCHKEY_AUDIT_KEY ? { key: e.LATCHKEY_AUDIT_KEY } : {}),
    },
    passwordReset: {
      tokenTtl: e.LATCHKEY_RESET_TOKEN_TTL,
      // A fragment, not a query: it never reaches a server log or a Referer header.
      url: e.LATCHKEY_RESET_URL ?? `${(e.LATCHKEY_ALLOWED_ORIGINS ?? [new URL(issuer).origin])[0]}/reset-password#token={token}`,
      ...(e.LATCHKEY_SMTP_URL ? { smtpUrl: e.LATCHKEY_SMTP_URL } : {}),
      from: e.LATCHKEY_MAIL_FROM ?? `latchkey <no-reply@${new URL(issuer).hostname}>`,
    },
    bootstrapAdmin:
      e.LATCHKEY_BOOTSTRAP_ADMIN_EMAIL && e.LATCHKEY_BOOTSTRAP_ADMIN_PASSWORD_FILE
        ? { email: e.LATCHKEY_BOOTSTRAP_ADMIN_EMAIL, passwordFile: e.LATCHKEY_BOOTSTRAP_ADMIN_PASSWORD_FILE }
        : null,
    port,
    logLevel: e.LOG_LEVEL,
    trustProxy: e.TRUST_PROXY === 'true' ? 'loopback' : Array.isArray(e.TRUST_PROXY) ? e.TRUST_PROXY.join(',') : e.TRUST_PROXY,
    issuer,
    audience: e.LATCHKEY_AUDIENCE ?? issuer,
    basePath: e.LATCHKEY_BASE_PATH,
    allowedOrigins: e.LATCHKEY_ALLOWED_ORIGINS ?? [new URL(issuer).origin],
    nativeOrigins: e.LATCHKEY_NATIVE_ORIGINS,
    registration: e.LATCHKEY_REGISTRATION,
    accessTokenTtl: e.LATCHKEY_ACCESS_TOKEN_TTL,
    refreshTokenTtl: e.LATCHKEY_REFRESH_TOKEN_TTL,
    sessionMaxTtl: e.LATCHKEY_SESSION_MAX_TTL,
    refreshGrace: e.LATCHKEY_REFRESH_GRACE,
    maxSessionsPerUser: e.LATCHKEY_MAX_SESSIONS_PER_USER,
    cookie: cookieFor(e.LATCHKEY_BASE_PATH, secure),
    jwksMaxAge: e.LATCHKEY_JWKS_MAX_AGE,
    clockSkew: e.LATCHKEY_CLOCK_SKEW,
    bodyLimit: e.LATCHKEY_BODY_LIMIT,
    keysDir: e.LATCHKEY_KEYS_DIR,
    keysRescan: e.LATCHKEY_KEYS_RESCAN,
    // Resource servers cache the JWKS for max-age, and jose's remote key set for up to 10 minutes.
    keyActivationDelay: e.LATCHKEY_KEY_ACTIVATION_DELAY ?? Math.max(e.LATCHKEY_JWKS_MAX_AGE, 600) + 60,
    keyRetention: e.LATCHKEY_ACCESS_TOKEN_TTL + e.LATCHKEY_CLOCK_SKEW + 60,
    argon2: {
      memoryCost: e.LATCHKEY_ARGON2_MEMORY_KIB,
      timeCost: e.LATCHKEY_ARGON2_ITERATIONS,
      parallelism: e.LATCHKEY_ARGON2_PARALLELISM,
    },
    loginRateLimit: e.LATCHKEY_LOGIN_RATE_LIMIT,
    clients: withDefaultClients(e.LATCHKEY_CLIENTS ?? []),
    verifyHeaders: {
      user: e.LATCHKEY_VERIFY_USER_HEADER,
      roles: e.LATCHKEY_VERIFY_ROLES_HEADER,
      session: e.LATCHKEY_VERIFY_SESSION_HEADER,
      client: e.LATCHKEY_VERIFY_CLIENT_HEADER,
      email: e.LATCHKEY_VERIFY_EMAIL_HEADER ?? null,
    },
    throttle: {
      account: e.LATCHKEY_ACCOUNT_RATE_LIMIT,
      accountWindow: e.LATCHKEY_ACCOUNT_RATE_WINDOW,
      globalLogin: e.LATCHKEY_GLOBAL_LOGIN_RATE_LIMIT,
      refreshIp: e.LATCHKEY_REFRESH_RATE_LIMIT,
      refreshSession: e.LATCHKEY_SESSION_REFRESH_RATE_LIMIT,
    },
    server: {
      requestTimeoutMs: e.LATCHKEY_REQUEST_TIMEOUT_MS,
      headersTimeoutMs: e.LATCHKEY_HEADERS_TIMEOUT_MS,
      keepAliveTimeoutMs: e.LATCHKEY_KEEP_ALIVE_TIMEOUT_MS,
      maxConnections: e.LATCHKEY_MAX_CONNECTIONS,
      maxRequestsPerSocket: e.LATCHKEY_MAX_REQUESTS_PER_SOCKET,
    },
    verifyFailOpen: e.LATCHKEY_VERIFY_FAIL_OPEN,
    verifyCacheSize: e.LATCHKEY_VERIFY_CACHE_SIZE,
    hashConcurrency: e.LATCHKEY_HASH_CONCURRENCY,
    hashQueue: e.LATCHKEY_HASH_QUEUE,
    threadPoolSize: e.UV_THREADPOOL_SIZE,
    tracing:
      (e.OTEL_EXPORTER_OTLP_ENDPOINT || e.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) && !e.OTEL_SDK_DISABLED
        ? { serviceName: e.OTEL_SERVICE_NAME }
        : null,
    redis: redisConnection(e),
  };
}

/** The configured clients, plus the default client of each channel unless configured under its id. */
function withDefaultClients(configured: ClientRegistration[]): ClientRegistration[] {
  const defaults: ClientRegistration[] = [
    { id: DEFAULT_CLIENTS.browser, channels: ['browser'], origins: [] },
    { id: DEFAULT_CLIENTS.native, channels: ['native'], origins: [] },
  ];
  return [...defaults.filter((d) => !configured.some((c) => c.id === d.id)), ...configured];
}

function redisConnection(e: z.infer<typeof schema>): Config['redis'] {
  const common = {
    keyPrefix: e.REDIS_KEY_PREFIX,
    commandTimeoutMs: e.REDIS_COMMAND_TIMEOUT_MS,
    replicasToAck: e.REDIS_REPLICAS_TO_ACK,
    replicaAckTimeoutMs: e.REDIS_REPLICA_ACK_TIMEOUT_MS,
  };
  // REDIS_USERNAME / REDIS_PASSWORD (or REDIS_PASSWORD_FILE) fill in what the URL leaves out.
  if (e.REDIS_URL) return { ...common, url: e.REDIS_URL, username: e.REDIS_USERNAME, password: e.REDIS_PASSWORD };
  if (e.REDIS_SENTINELS && e.REDIS_SENTINEL_MASTER) {
    const { REDIS_USERNAME: username, REDIS_PASSWORD: password } = e;
    return { ...common, sentinel: { sentinels: e.REDIS_SENTINELS, master: e.REDIS_SENTINEL_MASTER, username, password } };
  }
  if (e.REDIS_CLUSTER_NODES) return { ...common, cluster: { nodes: e.REDIS_CLUSTER_NODES } };
  return null;
}
