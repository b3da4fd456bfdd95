import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NO_CONTEXT } from '../src/audit/context.js';
import type { RedisStore } from '../src/store/redis-store.js';
import type { StoredAuditEntry } from '../src/store/store.js';
import { buildTestAdmin, buildTestApp, testKeysDir, type TestApp } from './helpers/app.js';
import { runCli } from './helpers/cli.js';
import { bearer, loginNative, PASSWORD, register, uniqueEmail } from './helpers/client.js';
import { testRedisUrl } from './support/redis.js';

interface Call {
  method?: 'GET' | 'POST' | 'PUT' | 'DELETE';
  url: string;
  body?: unknown;
  form?: string;
  headers?: Record<string, string>;
  /** The client's address (no proxy is trusted here, so it is the request's IP). */
  ip: string;
  /** Tells the entries of one request apart from the others'. */
  ua: string;
}

/**
 * Who acted and from where, for every kind of actor: each entry a request causes carries that request's IP,
 * user agent and id, whatever service down the call chain emitted it, and its actor is the user themself,
 * the operator, the CLI or `system`.
 */
describe('the context of audit entries', () => {
  let t: TestApp;
  let admin: FastifyInstance;
  let adminId: string;
  let adminToken: string;

  const send = (app: FastifyInstance, c: Call) =>
    app.inject({
      method: c.method ?? 'POST',
      url: c.url,
      remoteAddress: c.ip,
      headers: {
        'user-agent': c.ua,
        ...(c.body !== undefined && { 'content-type': 'application/json' }),
        ...(c.form !== undefined && { 'content-type': 'application/x-www-form-urlencoded' }),
        ...c.headers,
      },
      payload: c.body !== undefined ? JSON.stringify(c.body) : c.form,
    });

  async function entries(filter: { userId?: string; type?: string } = {}): Promise<StoredAuditEntry[]> {
    await t.app.latchkey.audit.flush();
    return (await t.app.latchkey.audit.query({ limit: 200, ...filter })).entries;
  }

  /**
   * The entries made by the request with user agent `ua`: exactly `types` (in any order), each with the
   * request's IP, user agent and one request id of its own, and `actor`.
   */
  function madeBy(all: StoredAuditEntry[], ua: string, ip: string, actor: string, types: string[]): StoredAuditEntry[] {
    const mine = all.filter((e) => e.userAgent === ua);
    expect(mine.map((e) => e.type).sort(), ua).toEqual([...types].sort());
    for (const e of mine) expect(e, `${ua}: ${e.type}`).toMatchObject({ actor, ip, userAgent: ua, requestId: expect.any(String) });
    expect(new Set(mine.map((e) => e.requestId)).size, ua).toBe(1);
    return mine;
  }

  beforeAll(async () => {
    t = await buildTestApp('redis');
    admin = await buildTestAdmin(t);
    const a = await register(t.app);
    adminId = a.id;
    await t.store.setRoles(a.id, ['admin']);
    adminToken = (await loginNative(t.app, a.email)).access;
  });
  afterAll(async () => {
    await admin.close();
    await t.close();
  });

  it("a user's own actions over the public API: the user, with the request's IP, user agent and id", async () => {
    const ip = '198.51.100.20';
    const email = uniqueEmail('own');
    const created = await send(t.app, { url: '/register', body: { email, password: PASSWORD }, ip, ua: 'own/register' });
    expect(created.statusCode).toBe(201);
    const id = (created.json() as { id: string }).id;
    const login = async (ua: string) => {
      const res = await send(t.app, { url: '/login', body: { email, password: PASSWORD }, ip, ua });
      expect(res.statusCode).toBe(200);
      const body = res.json() as { access_token: string; refresh_token: string; session_id: string };
      return { access: body.access_token, refresh: body.refresh_token, sessionId: body.session_id };
    };
    const first = await login('own/login');
    expect((await send(t.app, { url: '/login', body: { email, password: 'not the password' }, ip, ua: 'own/wrong' })).statusCode).toBe(401);

    const changed = await send(t.app, {
      url: '/password',
      body: { current_password: PASSWORD, new_password: `${PASSWORD} 2` },
      headers: bearer(first.access),
      ip,
      ua: 'own/change',
    });
    expect(changed.statusCode).toBe(200);
    const password = `${PASSWORD} 2`;
    const loginAgain = async (ua: string) => {
      const res = await send(t.app, { url: '/login', body: { email, password }, ip, ua });
      const body = res.json() as { access_token: string; refresh_token: string; session_id: string };
      return { access: body.access_token, refresh: body.refresh_token, sessionId: body.session_id };
    };
    const a = await loginAgain('own/login-a');
    const b = await loginAgain('own/login-b');
    const c = await loginAgain('own/login-c');
    expect((await send(t.app, { method: 'DELETE', url: `/sessions/${a.sessionId}`, headers: bearer(b.access), ip, ua: 'own/delete' })).statusCode).toBe(204);
    expect((await send(t.app, { url: '/logout', body: { refresh_token: b.refresh }, headers: bearer(b.access), ip, ua: 'own/logout' })).statusCode).toBe(204);
    expect((await send(t.app, { url: '/revoke', form: `token=${c.refresh}`, ip, ua: 'own/oauth-revoke' })).statusCode).toBe(200);
    const d = await loginAgain('own/login-d');
    expect((await send(t.app, { url: '/logout-all', headers: bearer(d.access), ip, ua: 'own/logout-all' })).statusCode).toBe(204);
    expect((await send(t.app, { url: '/password/forgot', body: { email }, ip, ua: 'own/forgot' })).statusCode).toBe(202);
    const badToken = `lk_pr_${id}.${'A'.repeat(43)}`;
    expect((await send(t.app, { url: '/password/reset', body: { token: badToken, new_password: `${PASSWORD} 3` }, ip, ua: 'own/reset' })).statusCode).toBe(401);

    const all = await entries({ userId: id });
    const actor = `user:${id}`;
    madeBy(all, 'own/register', ip, actor, ['account_created']);
    madeBy(all, 'own/login', ip, actor, ['login_succeeded']);
    madeBy(all, 'own/wrong', ip, actor, ['login_failed']);
    madeBy(all, 'own/change', ip, actor, ['password_changed', 'user_sessions_revoked', 'login_succeeded']);
    madeBy(all, 'own/delete', ip, actor, ['session_revoked']);
    madeBy(all, 'own/logout', ip, actor, ['access_token_denied', 'session_revoked']);
    madeBy(all, 'own/oauth-revoke', ip, actor, ['session_revoked']);
    madeBy(all, 'own/logout-all', ip, actor, ['user_sessions_revoked']);
    madeBy(all, 'own/forgot', ip, actor, ['password_reset_requested']);
    madeBy(all, 'own/reset', ip, actor, ['password_reset_failed']);
    // Every request its own id.
    expect(new Set(all.map((e) => e.requestId)).size).toBe(new Set(all.map((e) => e.userAgent)).size);
  });

  it('a spent refresh token presented again: the address and user agent of whoever presented it', async () => {
    const u = await register(t.app);
    const s = await loginNative(t.app, u.email);
    const rotated = await send(t.app, { url: '/refresh', body: { refresh_token: s.refresh }, ip: '198.51.100.30', ua: 'owner/refresh' });
    expect(rotated.statusCode).toBe(200);
    // Past the grace window and rotated again, so the first token is plainly spent.
    t.clock.advanceSeconds(t.config.refreshGrace + 1);
    const next = (rotated.json() as { refresh_token: string }).refresh_token;
    expect((await send(t.app, { url: '/refresh', body: { refresh_token: next }, ip: '198.51.100.30', ua: 'owner/refresh' })).statusCode).toBe(200);
    const thief = '203.0.113.66';
    const reused = await send(t.app, { url: '/refresh', body: { refresh_token: s.refresh }, ip: thief, ua: 'thief/1.0' });
    expect(reused.statusCode).toBe(401);
    const [entry] = madeBy(await entries({ userId: u.id }), 'thief/1.0', thief, `user:${u.id}`, ['refresh_token_reused']);
    expect(entry!.details).toMatchObject({ ip: thief, sessionId: s.sessionId });
  });

  it('an operator over the admin API: admin:<id> or key:<name>, also on the revocations a change causes', async () => {
    const ip = '192.0.2.10';
    const op = `admin:${adminId}`;
    const as = (c: Omit<Call, 'ip'> & { ip?: string }, token = adminToken) =>
      send(admin, { ...c, ip: c.ip ?? ip, headers: { ...bearer(token), ...c.headers } });

    const email = uniqueEmail('managed');
    const created = await as({ url: '/admin/users', body: { email, password: PASSWORD }, ua: 'ops/create' });
    expect(created.statusCode).toBe(201);
    const id = (created.json() as { id: string }).id;
    const s1 = await loginNative(t.app, email);
    const s2 = await loginNative(t.app, email);
    expect((await as({ method: 'DELETE', url: `/admin/users/${id}/sessions/${s1.sessionId}`, ua: 'ops/revoke-session' })).statusCode).toBe(204);
    expect((await as({ url: '/admin/tokens/revoke', body: { token: s2.access }, ua: 'ops/revoke-token' })).statusCode).toBe(204);
    expect((await as({ url: `/admin/users/${id}/disable`, ua: 'ops/disable' })).statusCode).toBe(200);
    expect((await as({ url: `/admin/users/${id}/enable`, ua: 'ops/enable' })).statusCode).toBe(200);
    await loginNative(t.app, email);
    expect((await as({ method: 'PUT', url: `/admin/users/${id}/roles`, body: { roles: ['auditor'], revoke: true }, ua: 'ops/roles' })).statusCode).toBe(200);
    await loginNative(t.app, email);
    expect((await as({ method: 'DELETE', url: `/admin/users/${id}/sessions`, ua: 'ops/revoke-all-sessions' })).statusCode).toBe(204);

    const minted = await as({ url: '/admin/api-keys', body: { name: 'audit-context' }, ua: 'ops/key-create' });
    expect(minted.statusCode).toBe(201);
    const key = (minted.json() as { key: string }).key;
    await loginNative(t.app, email);
    expect((await as({ url: `/admin/users/${id}/disable`, ip: '192.0.2.11', ua: 'key/disable' }, key)).statusCode).toBe(200);
    expect((await as({ url: '/admin/revoke-all', body: { role: 'nobody-holds-this' }, ua: 'key/revoke-all' }, key)).statusCode).toBe(200);
    expect((await as({ method: 'DELETE', url: '/admin/api-keys/audit-context', ua: 'ops/key-revoke' })).statusCode).toBe(204);

    const all = await entries({ userId: id });
    madeBy(all, 'ops/create', ip, op, ['account_created']);
    madeBy(all, 'ops/revoke-session', ip, op, ['session_revoked']);
    madeBy(all, 'ops/revoke-token', ip, op, ['access_token_denied']);
    madeBy(all, 'ops/disable', ip, op, ['account_disabled', 'user_sessions_revoked']);
    madeBy(all, 'ops/enable', ip, op, ['account_enabled']);
    madeBy(all, 'ops/roles', ip, op, ['roles_changed', 'user_sessions_revoked']);
    madeBy(all, 'ops/revoke-all-sessions', ip, op, ['user_sessions_revoked']);
    madeBy(all, 'key/disable', '192.0.2.11', 'key:audit-context', ['account_disabled', 'user_sessions_revoked']);
    const unowned = (await entries()).filter((e) => e.userId === null);
    madeBy(unowned, 'ops/key-create', ip, op, ['admin_key_created']);
    madeBy(unowned, 'ops/key-revoke', ip, op, ['admin_key_revoked']);
    madeBy(unowned, 'key/revoke-all', ip, 'key:audit-context', ['everyone_revoked']);
  });

  it('the ops console: its sign-in and sign-out are the user’s own, with the request’s context', async () => {
    const ip = '192.0.2.20';
    const adminUser = await register(t.app);
    await t.store.setRoles(adminUser.id, ['admin']);
    const plain = await register(t.app);
    const signedIn = await send(admin, { url: '/admin/console/login', body: { email: adminUser.email, password: PASSWORD }, ip, ua: 'console/login' });
    expect(signedIn.statusCode).toBe(200);
    const access = (signedIn.json() as { access_token: string }).access_token;
    expect((await send(admin, { url: '/admin/console/logout', headers: bearer(access), ip, ua: 'console/logout' })).statusCode).toBe(204);
    expect((await send(admin, { url: '/admin/console/login', body: { email: plain.email, password: PASSWORD }, ip, ua: 'console/not-admin' })).statusCode).toBe(401);

    const mine = await entries({ userId: adminUser.id });
    madeBy(mine, 'console/login', ip, `user:${adminUser.id}`, ['login_succeeded']);
    madeBy(mine, 'console/logout', ip, `user:${adminUser.id}`, ['session_revoked']);
    madeBy(await entries({ userId: plain.id }), 'console/not-admin', ip, `user:${plain.id}`, ['login_failed']);
  });

  it('the CLI: actor cli, no address, user agent or request id, also on the revocations it causes', async () => {
    const u = await register(t.app);
    await loginNative(t.app, u.email);
    const env = {
      REDIS_URL: testRedisUrl(),
      REDIS_KEY_PREFIX: (t.store as RedisStore).keyPrefix,
      LATCHKEY_ISSUER: t.config.issuer,
      LATCHKEY_KEYS_DIR: await testKeysDir(),
    };
    const disabled = await runCli(['users', 'disable', u.email], env);
    expect(disabled.stderr).toBe('');
    expect(disabled.code).toBe(0);
    const cli = (await entries({ userId: u.id })).filter((e) => e.actor === 'cli');
    expect(cli.map((e) => e.type).sort()).toEqual(['account_disabled', 'user_sessions_revoked']);
    for (const e of cli) expect(e).toMatchObject({ ip: null, userAgent: null, requestId: null });
  }, 60_000);

  it("'system' where no one acts: an unknown address, and services called without a request", async () => {
    const ghost = await send(t.app, { url: '/login', body: { email: uniqueEmail('ghost'), password: PASSWORD }, ip: '198.51.100.40', ua: 'ghost/1.0' });
    expect(ghost.statusCode).toBe(401);
    madeBy(await entries({ type: 'login_failed' }), 'ghost/1.0', '198.51.100.40', 'system', ['login_failed']);

    const u = await register(t.app);
    await t.app.latchkey.accounts.disable(u.id, NO_CONTEXT);
    await t.app.latchkey.revocations.revokeEveryone('nobody-has-this-either', NO_CONTEXT);
    const none = { ip: null, userAgent: null, requestId: null };
    const own = (await entries({ userId: u.id })).filter((e) => e.type !== 'account_created');
    expect(own.map((e) => e.type).sort()).toEqual(['account_disabled', 'user_sessions_revoked']);
    for (const e of own) expect(e).toMatchObject({ actor: `user:${u.id}`, ...none });
    expect((await entries({ type: 'everyone_revoked' }))[0]).toMatchObject({ actor: 'system', ...none, details: { role: 'nobody-has-this-either' } });
  });
});

describe('a login refused by the attempt limit, before its body is read', () => {
  it('is audited with the request’s address, user agent and id, at /login and at the console', async () => {
    const t = await buildTestApp('memory', { LATCHKEY_LOGIN_RATE_LIMIT: '1' });
    const admin = await buildTestAdmin(t);
    try {
      const u = await register(t.app);
      const login = (app: FastifyInstance, url: string, ua: string) =>
        app.inject({
          method: 'POST',
          url,
          remoteAddress: '198.51.100.50',
          headers: { 'content-type': 'application/json', 'user-agent': ua },
          payload: JSON.stringify({ email: u.email, password: PASSWORD }),
        });
      expect((await login(t.app, '/login', 'first/1.0')).statusCode).toBe(200);
      expect((await login(t.app, '/login', 'throttled/1.0')).statusCode).toBe(429);
      expect((await login(admin, '/admin/console/login', 'throttled-console/1.0')).statusCode).toBe(429);
      await t.app.latchkey.audit.flush();
      const refused = (await t.app.latchkey.audit.query({ type: 'login_failed', limit: 5 })).entries;
      for (const ua of ['throttled/1.0', 'throttled-console/1.0']) {
        expect(refused.find((e) => e.userAgent === ua), ua).toMatchObject({
          actor: 'system',
          userId: null,
          ip: '198.51.100.50',
          requestId: expect.any(String),
          details: { reason: 'throttled', ip: '198.51.100.50', userAgent: ua },
        });
      }
    } finally {
      await admin.close();
      await t.close();
    }
  });
});
