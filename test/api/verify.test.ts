import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, storeKinds, type TestApp } from '../helpers/app.js';
import { bearer, loginNative, post, register } from '../helpers/client.js';

describe.each(storeKinds)('GET /verify, forward auth (%s store)', (kind) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await buildTestApp(kind);
  });
  afterAll(async () => t.close());

  it('answers 200 with the user in headers for a good token, 401 once it is revoked', async () => {
    const user = await register(t.app);
    await t.store.setRoles(user.id, ['admin', 'ops']);
    const login = await loginNative(t.app, user.email);
    const ok = await t.app.inject({ url: '/verify', headers: bearer(login.access) });
    expect(ok.statusCode).toBe(200);
    expect(ok.body).toBe('');
    expect(ok.headers).toMatchObject({
      'x-user-id': user.id,
      'x-user-roles': 'admin,ops',
      'x-session-id': login.sessionId,
      'x-revocation-checked': 'true',
      'cache-control': 'no-store',
    });
    await post(t.app, '/logout', { refresh_token: login.refresh });
    const revoked = await t.app.inject({ url: '/verify', headers: bearer(login.access) });
    expect(revoked.statusCode).toBe(401);
    expect(revoked.headers['www-authenticate']).toMatch(/^Bearer error="invalid_token"/);
  });

  it('answers 401 without a token or with garbage', async () => {
    expect((await t.app.inject('/verify')).statusCode).toBe(401);
    expect((await t.app.inject({ url: '/verify', headers: bearer('x.y.z') })).statusCode).toBe(401);
  });
});
