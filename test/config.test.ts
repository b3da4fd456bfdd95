import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/config.js';

function problems(env: Record<string, string>): string[] {
  try {
    loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  return [];
}

describe('configuration', () => {
  it('has development defaults that need nothing set', () => {
    const c = loadConfig({});
    expect(c).toMatchObject({
      env: 'development',
      port: 3000,
      issuer: 'http://localhost:3000',
      accessTokenTtl: 900,
      refreshTokenTtl: 7 * 86400,
      sessionMaxTtl: 30 * 86400,
      refreshGrace: 10,
      redis: null,
      cookie: { name: '__Host-lk_rt', path: '/', secure: true },
      argon2: { memoryCost: 19456, timeCost: 2, parallelism: 1 },
    });
    expect(c.allowedOrigins).toEqual(['http://localhost:3000']);
  });

  it('production demands an explicit issuer and Redis, and refuses insecure cookies — all reported at once', () => {
    const p = problems({ NODE_ENV: 'production', LATCHKEY_COOKIE_INSECURE_DEV: 'true' });
    expect(p).toHaveLength(3);
    expect(p.join('\n')).toMatch(/LATCHKEY_ISSUER/);
    expect(p.join('\n')).toMatch(/REDIS_URL/);
    expect(p.join('\n')).toMatch(/LATCHKEY_COOKIE_INSECURE_DEV/);
    expect(problems({ NODE_ENV: 'production', LATCHKEY_ISSUER: 'https://auth.example.com', REDIS_URL: 'redis://r:6379' })).toEqual([]);
  });

  it('reports every bad value with its variable name', () => {
    const p = problems({ PORT: 'eighty', LATCHKEY_ARGON2_MEMORY_KIB: '1024', LATCHKEY_ALLOWED_ORIGINS: 'https://ok.example,not a url', REDIS_URL: 'http://x' });
    expect(p.map((x) => x.split(':')[0])).toEqual(
      expect.arrayContaining(['PORT', 'LATCHKEY_ARGON2_MEMORY_KIB', 'LATCHKEY_ALLOWED_ORIGINS.1', 'REDIS_URL']),
    );
  });

  it('argon2 parameters cannot go below m=19MiB, t=2', () => {
    expect(problems({ LATCHKEY_ARGON2_MEMORY_KIB: '19455' })).toHaveLength(1);
    expect(problems({ LATCHKEY_ARGON2_ITERATIONS: '1' })).toHaveLength(1);
  });

  it('a base path narrows the cookie and switches to the __Secure- prefix; insecure dev drops the prefix', () => {
    expect(loadConfig({ LATCHKEY_BASE_PATH: '/auth' }).cookie).toEqual({ name: '__Secure-lk_rt', path: '/auth', secure: true });
    expect(loadConfig({ LATCHKEY_COOKIE_INSECURE_DEV: 'true' }).cookie).toEqual({ name: 'lk_rt', path: '/', secure: false });
    expect(problems({ LATCHKEY_BASE_PATH: 'auth/' })).toHaveLength(1);
  });

  it('the grace window may be zero but not negative', () => {
    expect(loadConfig({ LATCHKEY_REFRESH_GRACE: '0' }).refreshGrace).toBe(0);
    expect(problems({ LATCHKEY_REFRESH_GRACE: '-1' })).toHaveLength(1);
  });
});

describe('key rotation settings', () => {
  it('default the activation delay to cover jose’s 10-minute cache, and refuse one shorter than the JWKS max-age', () => {
    expect(loadConfig({}).keyActivationDelay).toBe(660);
    expect(loadConfig({ LATCHKEY_JWKS_MAX_AGE: '3600' }).keyActivationDelay).toBe(3660);
    expect(loadConfig({}).keyRetention).toBe(900 + 5 + 60);
    expect(problems({ LATCHKEY_JWKS_MAX_AGE: '300', LATCHKEY_KEY_ACTIVATION_DELAY: '200' })[0]).toMatch(/LATCHKEY_KEY_ACTIVATION_DELAY/);
  });
  it('takes exactly one Redis topology: a node, Sentinel or Cluster', () => {
    const prod = { NODE_ENV: 'production', LATCHKEY_ISSUER: 'https://auth.example.com' };
    expect(loadConfig({ ...prod, REDIS_CLUSTER_NODES: 'redis://10.0.0.1:7000, redis://10.0.0.2:7000' }).redis).toMatchObject({
      cluster: { nodes: ['redis://10.0.0.1:7000', 'redis://10.0.0.2:7000'] },
    });
    expect(loadConfig({ ...prod, REDIS_SENTINELS: 'redis://s1:26379,redis://s2:26379', REDIS_SENTINEL_MASTER: 'main', REDIS_PASSWORD: 'pw' }).redis).toMatchObject({
      sentinel: { sentinels: ['redis://s1:26379', 'redis://s2:26379'], master: 'main', password: 'pw' },
    });
    expect(problems({ REDIS_URL: 'redis://a:6379', REDIS_CLUSTER_NODES: 'redis://b:7000' })).toEqual([
      'REDIS_URL: set only one of REDIS_URL, REDIS_SENTINELS and REDIS_CLUSTER_NODES',
    ]);
    expect(problems({ REDIS_SENTINELS: 'redis://s1:26379' })).toEqual(['REDIS_SENTINEL_MASTER: is required with REDIS_SENTINELS']);
    expect(problems({ REDIS_CLUSTER_NODES: 'redis://a:7000,http://b:7000' })).toEqual([
      'REDIS_CLUSTER_NODES: must be comma-separated redis:// or rediss:// URLs',
    ]);
    expect(problems({ REDIS_CLUSTER_NODES: 'redis://a:7000', REDIS_REPLICAS_TO_ACK: '1' })).toEqual([
      'REDIS_REPLICAS_TO_ACK: is not supported with REDIS_CLUSTER_NODES',
    ]);
    expect(loadConfig({ REDIS_URL: 'redis://a:6379', REDIS_REPLICAS_TO_ACK: '1' }).redis).toMatchObject({ replicasToAck: 1, replicaAckTimeoutMs: 500 });
    expect(problems(prod)[0]).toMatch(/^REDIS_URL: is required when NODE_ENV=production, or REDIS_SENTINELS or REDIS_CLUSTER_NODES/);
  });

  it('TRUST_PROXY takes a hop count or proxy addresses and CIDRs, never "everyone" in production', () => {
    expect(loadConfig({}).trustProxy).toBe(false);
    expect(loadConfig({ TRUST_PROXY: '2' }).trustProxy).toBe(2);
    expect(loadConfig({ TRUST_PROXY: '10.0.0.0/8, 192.168.1.7,::1, fd00::/8,loopback' }).trustProxy).toBe('10.0.0.0/8,192.168.1.7,::1,fd00::/8,loopback');
    // Outside production `true` means a proxy on the same host.
    expect(loadConfig({ TRUST_PROXY: 'true' }).trustProxy).toBe('loopback');
    const prod = { NODE_ENV: 'production', LATCHKEY_ISSUER: 'https://auth.example.com', REDIS_URL: 'redis://r:6379' };
    expect(problems({ ...prod, TRUST_PROXY: 'true' })).toEqual([expect.stringMatching(/^TRUST_PROXY: true would believe X-Forwarded-For from anyone/)]);
    expect(problems({ TRUST_PROXY: '10.0.0.0/33' })[0]).toMatch(/^TRUST_PROXY: must be false, a hop count/);
    expect(problems({ TRUST_PROXY: 'proxy.internal' })[0]).toMatch(/^TRUST_PROXY: must be false, a hop count/);
  });

  it('throttles and server timeouts are configurable; headers must arrive before the whole request', () => {
    const c = loadConfig({ LATCHKEY_ACCOUNT_RATE_LIMIT: '5', LATCHKEY_REQUEST_TIMEOUT_MS: '2000', LATCHKEY_HEADERS_TIMEOUT_MS: '1000' });
    expect(c.throttle).toEqual({ account: 5, accountWindow: 900, globalLogin: 100, refreshIp: 600, refreshSession: 30 });
    expect(c.server).toEqual({ requestTimeoutMs: 2000, headersTimeoutMs: 1000, keepAliveTimeoutMs: 72_000, maxConnections: 10_000, maxRequestsPerSocket: 0 });
    expect(problems({ LATCHKEY_REQUEST_TIMEOUT_MS: '1000', LATCHKEY_HEADERS_TIMEOUT_MS: '2000' })).toEqual([
      'LATCHKEY_HEADERS_TIMEOUT_MS: must not exceed LATCHKEY_REQUEST_TIMEOUT_MS',
    ]);
  });
});

describe('client registry (LATCHKEY_CLIENTS)', () => {
  it('has a default client per channel, and reads id:channels[:origins] entries', () => {
    expect(loadConfig({}).clients).toEqual([
      { id: 'latchkey-browser', channels: ['browser'], origins: [] },
      { id: 'latchkey-native', channels: ['native'], origins: [] },
    ]);
    const c = loadConfig({
      LATCHKEY_ALLOWED_ORIGINS: 'https://app.example.com,https://admin.example.com',
      LATCHKEY_CLIENTS: 'web:browser:https://app.example.com, https://admin.example.com; ios-app:native ;latchkey-native:native',
    });
    expect(c.clients).toEqual([
      { id: 'latchkey-browser', channels: ['browser'], origins: [] },
      { id: 'web', channels: ['browser'], origins: ['https://app.example.com', 'https://admin.example.com'] },
      { id: 'ios-app', channels: ['native'], origins: [] },
      { id: 'latchkey-native', channels: ['native'], origins: [] },
    ]);
  });

  it('refuses bad ids, unknown channels, duplicates, and origins outside the allow-list', () => {
    expect(problems({ LATCHKEY_CLIENTS: 'bad id:native' })[0]).toMatch(/^LATCHKEY_CLIENTS/);
    expect(problems({ LATCHKEY_CLIENTS: 'app:desktop' })[0]).toMatch(/^LATCHKEY_CLIENTS/);
    expect(problems({ LATCHKEY_CLIENTS: 'app:native;app:browser' })[0]).toMatch(/unique/);
    expect(problems({ LATCHKEY_ALLOWED_ORIGINS: 'https://app.example.com', LATCHKEY_CLIENTS: 'web:browser:https://evil.example' })[0]).toMatch(
      /not in LATCHKEY_ALLOWED_ORIGINS/,
    );
    expect(problems({ LATCHKEY_ALLOWED_ORIGINS: 'https://app.example.com', LATCHKEY_CLIENTS: 'ios:native:https://app.example.com' })[0]).toMatch(
      /browser channel/,
    );
  });
});

describe('forward auth header names', () => {
  it('default to x-user-id and friends with no e-mail, and must be distinct header names', () => {
    expect(loadConfig({}).verifyHeaders).toEqual({ user: 'x-user-id', roles: 'x-user-roles', session: 'x-session-id', client: 'x-client-id', email: null });
    expect(loadConfig({ LATCHKEY_VERIFY_EMAIL_HEADER: 'X-Auth-Request-Email' }).verifyHeaders.email).toBe('x-auth-request-email');
    expect(problems({ LATCHKEY_VERIFY_USER_HEADER: 'x user' })).toHaveLength(1);
    expect(problems({ LATCHKEY_VERIFY_EMAIL_HEADER: 'X-User-Id' })[0]).toMatch(/differ/);
  });
});

describe('secrets from files (*_FILE)', () => {
  const prod = { NODE_ENV: 'production', LATCHKEY_ISSUER: 'https://auth.example.com', REDIS_URL: 'redis://redis:6379' };
  const files: Record<string, string> = {
    '/run/secrets/redis_password': 's3cret pass\n',
    '/run/secrets/smtp': 'smtps://mailer:s3cret@smtp.example.com:465\n',
    '/run/secrets/not_smtp': 'http://mailer:s3cret@smtp.example.com\n',
  };
  const readFile = (path: string) => {
    if (path in files) return files[path]!;
    throw Object.assign(new Error(`ENOENT: ${path}`), { code: 'ENOENT' });
  };

  it('REDIS_PASSWORD_FILE reads the password from a file, final line break dropped', () => {
    const c = loadConfig({ ...prod, REDIS_PASSWORD_FILE: '/run/secrets/redis_password' }, { readFile });
    expect(c.redis).toMatchObject({ url: 'redis://redis:6379', password: 's3cret pass' });
  });

  it('LATCHKEY_SMTP_URL_FILE reads the SMTP URL the same way, and the URL is checked as if set directly', () => {
    expect(loadConfig({ ...prod, LATCHKEY_SMTP_URL_FILE: '/run/secrets/smtp' }, { readFile }).passwordReset.smtpUrl).toBe(
      'smtps://mailer:s3cret@smtp.example.com:465',
    );
    const both = () => loadConfig({ ...prod, LATCHKEY_SMTP_URL: 'smtp://a', LATCHKEY_SMTP_URL_FILE: '/run/secrets/smtp' }, { readFile });
    expect(both).toThrow(/LATCHKEY_SMTP_URL_FILE: set LATCHKEY_SMTP_URL or LATCHKEY_SMTP_URL_FILE, not both/);
    const bad = () => loadConfig({ ...prod, LATCHKEY_SMTP_URL_FILE: '/run/secrets/not_smtp' }, { readFile });
    expect(bad).toThrow(/LATCHKEY_SMTP_URL: must be an smtp:\/\/ or smtps:\/\/ URL, without spaces/);
    expect(bad).not.toThrow(/s3cret/);
  });

  it('refuses both forms at once and an unreadable file, never printing the secret', () => {
    const both = () => loadConfig({ ...prod, REDIS_PASSWORD: 'x', REDIS_PASSWORD_FILE: '/run/secrets/redis_password' }, { readFile });
    expect(both).toThrow(/REDIS_PASSWORD_FILE: set REDIS_PASSWORD or REDIS_PASSWORD_FILE, not both/);
    const missing = () => loadConfig({ ...prod, REDIS_PASSWORD_FILE: '/nope' }, { readFile });
    expect(missing).toThrow(/REDIS_PASSWORD_FILE: cannot read \/nope \(ENOENT\)/);
    try {
      loadConfig({ ...prod, REDIS_PASSWORD_FILE: '/run/secrets/redis_password', REDIS_KEY_PREFIX: 'x'.repeat(65) }, { readFile });
    } catch (err) {
      expect(String(err)).not.toContain('s3cret');
    }
  });
});

describe('operator settings', () => {
  it('the admin API has its own port (3001 by default, 0 turns it off, never the API or metrics port)', () => {
    expect(loadConfig({}).admin).toEqual({ host: '127.0.0.1', port: 3001 });
    expect(loadConfig({ LATCHKEY_ADMIN_PORT: '0' }).admin).toBeNull();
    expect(loadConfig({ LATCHKEY_ADMIN_PORT: '4000', LATCHKEY_ADMIN_HOST: '10.0.0.5' }).admin).toEqual({ host: '10.0.0.5', port: 4000 });
    expect(problems({ LATCHKEY_ADMIN_PORT: '3000' })[0]).toMatch(/^LATCHKEY_ADMIN_PORT: must differ from PORT/);
    expect(problems({ LATCHKEY_ADMIN_PORT: '9464' })[0]).toMatch(/^LATCHKEY_ADMIN_PORT: must differ/);
  });

  it('audit retention, reset tokens, SMTP and the bootstrap admin', () => {
    const c = loadConfig({});
    expect(c.audit).toEqual({ maxAgeMs: 30 * 86_400_000, maxEntries: 100_000 });
    expect(c.passwordReset).toMatchObject({ tokenTtl: 1800, url: 'http://localhost:3000/reset-password#token={token}' });
    expect(c.bootstrapAdmin).toBeNull();
    expect(problems({ LATCHKEY_RESET_URL: 'https://app.example.com/reset' })).toEqual(['LATCHKEY_RESET_URL: must be an http(s) URL containing {token}']);
    expect(problems({ LATCHKEY_SMTP_URL: 'http://mail' })).toEqual(['LATCHKEY_SMTP_URL: must be an smtp:// or smtps:// URL, without spaces']);
    // A file whose URL is followed by a blank line: the final line break goes, the rest is refused, not passed on.
    expect(problems({ LATCHKEY_SMTP_URL: 'smtp://mail:25\n' })).toEqual(['LATCHKEY_SMTP_URL: must be an smtp:// or smtps:// URL, without spaces']);
    expect(problems({ LATCHKEY_AUDIT_KEY: 'short' })).toEqual(['LATCHKEY_AUDIT_KEY: must be at least 32 characters']);
    expect(problems({ LATCHKEY_BOOTSTRAP_ADMIN_EMAIL: 'a@example.com' })[0]).toMatch(/go together/);
  });
});
