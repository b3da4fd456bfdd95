import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { buildTestAdmin, buildTestApp, storeKinds, type TestApp } from '../helpers/app.js';
import { bearer, loginNative, PASSWORD, post, refreshNative, register, uniqueEmail } from '../helpers/client.js';

type Json = Record<string, unknown>;

describe.each(storeKinds)('admin API (%s store)', (kind) => {
  let t: TestApp;
  let admin: FastifyInstance;
  let adminToken: string;
  let adminId: string;
  let adminEmail: string;

  const call = (method: string, url: string, token: string | null, body?: unknown): Promise<LightMyRequestResponse> =>
    admin.inject({
      method: method as 'GET',
      url,
      headers: { ...(token ? bearer(token) : {}), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      payload: body === undefined ? undefined : JSON.stringify(body),
    });
  const as = (method: string, url: string, body?: unknown) => call(method, url, adminToken, body);

  async function auditEntries(query: string): Promise<Json[]> {
    await t.app.latchkey.audit.flush();
    const res = await as('GET', `/admin/audit?${query}`);
    expect(res.statusCode).toBe(200);
    return (res.json() as { entries: Json[] }).entries;
  }

  beforeAll(async () => {
    t = await buildTestApp(kind);
    admin = await buildTestAdmin(t);
    const a = await register(t.app);
    adminId = a.id;
    adminEmail = a.email;
    await t.store.setRoles(a.id, ['admin']);
  });
  // Some tests move the clock past an access token's lifetime.
  beforeEach(async () => {
    adminToken = (await loginNative(t.app, adminEmail)).access;
  });
  afterAll(async () => {
    await admin.close();
    await t.close();
  });

  it('lives on its own app: /admin/ paths on the public app answer 404', async () => {
    const res = await t.app.inject({ method: 'GET', url: '/admin/users', headers: bearer(adminToken) });
    expect(res.statusCode).toBe(404);
    expect(res.json()).toMatchObject({ error: 'not_found' });
    expect((await as('GET', '/admin/users')).statusCode).toBe(200);
  });

  it('refuses callers without credentials (401), non-admins (403), revoked admins and bad keys (401), changing nothing', async () => {
    const victim = await register(t.app);
    const other = await register(t.app);
    const otherToken = (await loginNative(t.app, other.email)).access;

    const none = await call('POST', `/admin/users/${victim.id}/disable`, null);
    expect(none.statusCode).toBe(401);
    expect(none.headers['www-authenticate']).toMatch(/^Bearer error="invalid_token"/);
    expect((await call('POST', `/admin/users/${victim.id}/disable`, otherToken)).statusCode).toBe(403);
    expect((await call('POST', `/admin/users/${victim.id}/disable`, 'lk_ak_AAAAAAAAAAAAAAAAAAAAAA.' + 'A'.repeat(43))).statusCode).toBe(401);
    expect((await call('POST', `/admin/users/${victim.id}/disable`, 'lk_ak_garbage')).statusCode).toBe(401);
    expect((await t.store.getUser(victim.id))?.disabled).toBe(false);

    // An admin who logged out everywhere: the old token is refused at once.
    const former = await register(t.app);
    await t.store.setRoles(former.id, ['admin']);
    const formerLogin = await loginNative(t.app, former.email);
    expect((await call('GET', '/admin/users', formerLogin.access)).statusCode).toBe(200);
    await post(t.app, '/logout-all', undefined, bearer(formerLogin.access));
    expect((await call('GET', '/admin/users', formerLogin.access)).statusCode).toBe(401);

    // A demoted admin: the role is read from the account, not the token.
    const demoted = await register(t.app);
    await t.store.setRoles(demoted.id, ['admin']);
    const demotedLogin = await loginNative(t.app, demoted.email);
    await t.store.setRoles(demoted.id, []);
    expect((await call('GET', '/admin/users', demotedLogin.access)).statusCode).toBe(403);
  });

  it('admin API keys: shown once, hashed at rest, named in the audit trail, revocable and expiring', async () => {
    const created = await as('POST', '/admin/api-keys', { name: `ops-${kind}`, expires_in: 3600 });
    expect(created.statusCode).toBe(201);
    const { key, id } = created.json() as { key: string; id: string };
    expect(key).toMatch(/^lk_ak_[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}$/);
    expect((await as('POST', '/admin/api-keys', { name: `ops-${kind}` })).statusCode).toBe(409);
    const stored = await t.store.getAdminKey(id);
    expect(JSON.stringify(stored)).not.toContain(key.split('.')[1]);
    const listed = (await as('GET', '/admin/api-keys')).json() as { keys: Json[] };
    expect(listed.keys.find((k) => k.id === id)).toMatchObject({ name: `ops-${kind}`, created_by: `admin:${adminId}` });
    expect(JSON.stringify(listed)).not.toContain(key);

    const victim = await register(t.app);
    expect((await call('POST', `/admin/users/${victim.id}/disable`, key)).statusCode).toBe(200);
    const disabled = await auditEntries(`user=${victim.id}&type=account_disabled`);
    expect(disabled[0]).toMatchObject({ actor: `key:ops-${kind}`, type: 'account_disabled', user_id: victim.id });

    // A wrong secret with a real id is refused.
    expect((await call('GET', '/admin/users', `${key.slice(0, -4)}AAAA`)).statusCode).toBe(401);
    // Expired.
    t.clock.advanceSeconds(3601);
    expect((await call('GET', '/admin/users', key)).statusCode).toBe(401);
    adminToken = (await loginNative(t.app, adminEmail)).access;

    const second = (await as('POST', '/admin/api-keys', { name: `second-${kind}` })).json() as { key: string; id: string };
    expect((await call('GET', '/admin/users', second.key)).statusCode).toBe(200);
    // A key is read like any Bearer credential (routes/common.ts authorizationHeader): a token in the URL too is refused.
    const inUrl = await admin.inject({ method: 'GET', url: `/admin/api-keys?access_token=${second.key}`, headers: { authorization: `Bearer ${second.key}` } });
    expect(inUrl.statusCode).toBe(400);
    expect((await as('DELETE', `/admin/api-keys/${second.id}`)).statusCode).toBe(204);
    expect((await as('DELETE', `/admin/api-keys/${second.id}`)).statusCode).toBe(404);
    expect((await call('GET', '/admin/users', second.key)).statusCode).toBe(401);
    expect((await auditEntries('type=admin_key_revoked'))[0]).toMatchObject({ actor: `admin:${adminId}`, details: { name: `second-${kind}` } });
  });

  it('creates, finds and shows users; refuses a taken address and a common password', async () => {
    const email = uniqueEmail('made');
    const created = await as('POST', '/admin/users', { email, password: PASSWORD, roles: ['support'] });
    expect(created.statusCode).toBe(201);
    const user = created.json() as Json;
    expect(user).toMatchObject({ email, roles: ['support'], disabled: false, last_login_at: null, session_count: 0 });
    expect((await as('POST', '/admin/users', { email, password: PASSWORD })).statusCode).toBe(409);
    const weak = await as('POST', '/admin/users', { email: uniqueEmail(), password: 'password1' });
    expect(weak.statusCode).toBe(400);
    expect(weak.json()).toMatchObject({ error: 'invalid_request', error_description: expect.stringMatching(/^password: .*common/) });
    // The same clean-text rule as /login, or the owner could never type the password an operator set.
    const control = await as('POST', '/admin/users', { email: uniqueEmail(), password: 'correct horse\u0007battery' });
    expect(control.statusCode).toBe(400);
    expect(control.json()).toMatchObject({ error: 'invalid_request', error_description: expect.stringMatching(/^password/) });

    await loginNative(t.app, email);
    const found = (await as('GET', `/admin/users?email=${encodeURIComponent(email.toUpperCase())}`)).json() as { users: Json[] };
    expect(found.users).toHaveLength(1);
    expect(found.users[0]).toMatchObject({ id: user.id, session_count: 1, last_login_at: expect.any(String) });
    expect(((await as('GET', '/admin/users?email=nobody%40example.com')).json() as { users: Json[] }).users).toEqual([]);
    expect((await as('GET', `/admin/users/${String(user.id)}`)).json()).toMatchObject({ id: user.id, email });
    expect((await as('GET', '/admin/users/00000000-0000-4000-8000-000000000000')).statusCode).toBe(404);
    const page = (await as('GET', '/admin/users?limit=2')).json() as { users: Json[]; next_cursor: string | null };
    expect(page.users).toHaveLength(2);
    expect(page.next_cursor).not.toBeNull();
    expect((await auditEntries(`user=${String(user.id)}&type=account_created`))[0]).toMatchObject({ actor: `admin:${adminId}` });
  });

  it('lists and revokes sessions one by one or all at once; /verify refuses their tokens at once', async () => {
    const u = await register(t.app);
    const a = await loginNative(t.app, u.email);
    const b = await loginNative(t.app, u.email);
    const c = await loginNative(t.app, u.email);
    const sessions = (await as('GET', `/admin/users/${u.id}/sessions`)).json() as Json[];
    expect(sessions.map((s) => s.id).sort()).toEqual([a.sessionId, b.sessionId, c.sessionId].sort());
    expect(sessions[0]).toMatchObject({ channel: 'body', ip: '127.0.0.1' });

    expect((await as('DELETE', `/admin/users/${u.id}/sessions/${a.sessionId}`)).statusCode).toBe(204);
    expect((await as('DELETE', `/admin/users/${u.id}/sessions/${a.sessionId}`)).statusCode).toBe(404);
    expect((await t.app.inject({ url: '/verify', headers: bearer(a.access) })).statusCode).toBe(401);
    expect((await t.app.inject({ url: '/verify', headers: bearer(b.access) })).statusCode).toBe(200);

    expect((await as('DELETE', `/admin/users/${u.id}/sessions`)).statusCode).toBe(204);
    for (const s of [b, c]) {
      expect((await t.app.inject({ url: '/verify', headers: bearer(s.access) })).statusCode).toBe(401);
      expect((await refreshNative(t.app, s.refresh)).statusCode).toBe(401);
    }
    expect((await as('DELETE', '/admin/users/00000000-0000-4000-8000-000000000000/sessions')).statusCode).toBe(404);
    const revoked = await auditEntries(`user=${u.id}&type=session_revoked`);
    expect(revoked[0]).toMatchObject({ actor: `admin:${adminId}`, details: { reason: 'admin', sessionId: a.sessionId } });
  });

  it('disable revokes everything at once and login answers exactly as for a wrong password; enable lets them back', async () => {
    const u = await register(t.app);
    const s = await loginNative(t.app, u.email);
    const disabled = await as('POST', `/admin/users/${u.id}/disable`);
    expect(disabled.statusCode).toBe(200);
    expect(disabled.json()).toMatchObject({ disabled: true, session_count: 0 });
    expect((await as('POST', `/admin/users/${u.id}/disable`)).statusCode).toBe(200);
    expect((await t.app.inject({ url: '/verify', headers: bearer(s.access) })).statusCode).toBe(401);
    expect((await refreshNative(t.app, s.refresh)).statusCode).toBe(401);
    const right = await post(t.app, '/login', { email: u.email, password: PASSWORD });
    const wrong = await post(t.app, '/login', { email: u.email, password: 'not the password at all' });
    expect(right.statusCode).toBe(401);
    expect(right.body).toBe(wrong.body);

    expect((await as('POST', `/admin/users/${u.id}/enable`)).json()).toMatchObject({ disabled: false });
    expect((await post(t.app, '/login', { email: u.email, password: PASSWORD })).statusCode).toBe(200);
    expect((await as('POST', '/admin/users/00000000-0000-4000-8000-000000000000/disable')).statusCode).toBe(404);
  });

  it('roles reach access tokens at the next refresh, or at once with revoke', async () => {
    const u = await register(t.app);
    const s = await loginNative(t.app, u.email);
    const set = await as('PUT', `/admin/users/${u.id}/roles`, { roles: ['editor', 'editor', 'viewer'] });
    expect(set.json()).toMatchObject({ roles: ['editor', 'viewer'] });
    expect((await t.app.inject({ url: '/verify', headers: bearer(s.access) })).headers['x-user-roles']).toBe('');
    const refreshed = (await refreshNative(t.app, s.refresh)).json() as { access_token: string };
    expect((await t.app.inject({ url: '/verify', headers: bearer(refreshed.access_token) })).headers['x-user-roles']).toBe('editor,viewer');

    expect((await as('PUT', `/admin/users/${u.id}/roles`, { roles: ['viewer'], revoke: true })).json()).toMatchObject({ roles: ['viewer'], session_count: 0 });
    expect((await t.app.inject({ url: '/verify', headers: bearer(refreshed.access_token) })).statusCode).toBe(401);
    expect((await as('PUT', `/admin/users/${u.id}/roles`, { roles: ['bad role!'] })).statusCode).toBe(400);
    expect((await auditEntries(`user=${u.id}&type=roles_changed`))[0]).toMatchObject({ details: { roles: ['viewer'], previous: ['editor', 'viewer'] } });
  });

  it('revokes one access token, by the token or by jti, sub and exp', async () => {
    const u = await register(t.app);
    const a = await loginNative(t.app, u.email);
    const b = await loginNative(t.app, u.email);
    expect((await as('POST', '/admin/tokens/revoke', { token: a.access })).statusCode).toBe(204);
    expect((await t.app.inject({ url: '/verify', headers: bearer(a.access) })).statusCode).toBe(401);
    const claims = JSON.parse(Buffer.from(b.access.split('.')[1]!, 'base64url').toString()) as { jti: string; sub: string; exp: number };
    expect((await as('POST', '/admin/tokens/revoke', { jti: claims.jti, sub: claims.sub, exp: claims.exp })).statusCode).toBe(204);
    expect((await t.app.inject({ url: '/verify', headers: bearer(b.access) })).statusCode).toBe(401);
    // Other tokens of the same session are untouched: the session goes on.
    expect((await refreshNative(t.app, b.refresh)).statusCode).toBe(200);
    expect((await as('POST', '/admin/tokens/revoke', { token: 'not.a.token' })).statusCode).toBe(400);
    expect((await as('POST', '/admin/tokens/revoke', {})).statusCode).toBe(400);
  });

  it('the incident switch for one role logs out every holder of it at once, and no one else', async () => {
    const holder = await register(t.app);
    const other = await register(t.app);
    expect((await as('PUT', `/admin/users/${holder.id}/roles`, { roles: ['contractor'] })).statusCode).toBe(200);
    const h = await loginNative(t.app, holder.email);
    const o = await loginNative(t.app, other.email);
    t.clock.advance(1000);
    const res = await as('POST', '/admin/revoke-all', { role: 'contractor' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ role: 'contractor', revoked_after: expect.any(String) });
    expect((await t.app.inject({ url: '/verify', headers: bearer(h.access) })).statusCode).toBe(401);
    expect((await refreshNative(t.app, h.refresh)).statusCode).toBe(401);
    expect((await t.app.inject({ url: '/verify', headers: bearer(o.access) })).statusCode).toBe(200);
    expect((await refreshNative(t.app, o.refresh)).statusCode).toBe(200);
    // The undo is a new login, a second after the mark.
    t.clock.advance(1000);
    const again = await loginNative(t.app, holder.email);
    expect((await t.app.inject({ url: '/verify', headers: bearer(again.access) })).statusCode).toBe(200);
    expect((await as('POST', '/admin/revoke-all', { role: 'bad role!' })).statusCode).toBe(400);
    expect((await auditEntries('type=everyone_revoked'))[0]).toMatchObject({ type: 'everyone_revoked' });
  });

  it('the audit trail records logins with IP and user agent, never the address of an unknown account', async () => {
    const u = await register(t.app);
    await post(t.app, '/login', { email: u.email, password: PASSWORD }, { 'user-agent': 'audit-test/1.0' });
    await post(t.app, '/login', { email: u.email, password: 'wrong wrong wrong' });
    const ghost = uniqueEmail('ghost');
    await post(t.app, '/login', { email: ghost, password: 'wrong wrong wrong' });
    await post(t.app, '/login', { email: ghost.toUpperCase(), password: 'wrong wrong wrong' });

    const mine = await auditEntries(`user=${encodeURIComponent(u.email)}`);
    expect(mine.map((e) => e.type)).toEqual(['login_failed', 'login_succeeded', 'account_created']);
    expect(mine[1]).toMatchObject({ actor: `user:${u.id}`, ip: '127.0.0.1', user_agent: 'audit-test/1.0', request_id: expect.any(String) });
    expect(mine[0]).toMatchObject({ details: { reason: 'wrong_password' } });

    const failed = await auditEntries('type=login_failed&limit=2');
    expect(failed).toHaveLength(2);
    expect(failed[0]).toMatchObject({ user_id: null, actor: 'system', details: { reason: 'unknown_account', emailHash: expect.any(String) } });
    // One address, one hash (whatever its case), and the address itself nowhere.
    expect((failed[0]!.details as Json).emailHash).toBe((failed[1]!.details as Json).emailHash);
    const all = JSON.stringify(await auditEntries('limit=500'));
    expect(all.toLowerCase()).not.toContain(ghost.toLowerCase());
    expect(all).not.toContain(PASSWORD);
    expect(all).not.toContain('wrong wrong wrong');

    // Paging: a cursor continues where a page stopped.
    const first = (await as('GET', '/admin/audit?limit=3')).json() as { entries: Json[]; next_cursor: string };
    const second = (await as('GET', `/admin/audit?limit=3&cursor=${first.next_cursor}`)).json() as { entries: Json[] };
    expect(first.entries).toHaveLength(3);
    expect(second.entries[0]!.id).not.toBe(first.entries[2]!.id);
    expect(String(second.entries[0]!.time) <= String(first.entries[2]!.time)).toBe(true);
    expect((await as('GET', '/admin/audit?limit=0')).statusCode).toBe(400);
  });
});
