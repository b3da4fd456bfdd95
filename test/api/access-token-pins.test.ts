import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, storeKinds, type TestApp } from '../helpers/app.js';
import { bearer, loginNative, post, register } from '../helpers/client.js';
import { forgeries, resign, type Context } from '../helpers/forge.js';

/**
 * latchkey's own Bearer endpoints pin every header field and claim of an access token, not only its
 * signature: each token below is signed with latchkey's real key and kid, with one thing changed.
 */
describe.each(storeKinds)('Bearer endpoints refuse a token signed with the real key but one thing changed (%s store)', (kind) => {
  let t: TestApp;
  let email: string;
  beforeAll(async () => {
    t = await buildTestApp(kind);
    email = (await register(t.app)).email;
  });
  afterAll(async () => t.close());

  const context = (): Context => ({
    nowSeconds: Math.floor(t.clock.now() / 1000),
    ttlSeconds: t.config.accessTokenTtl,
    skewSeconds: t.config.clockSkew,
  });

  const call = {
    sessions: (token: string) => t.app.inject({ url: '/sessions', headers: bearer(token) }),
    verify: (token: string) => t.app.inject({ url: '/verify', headers: bearer(token) }),
    logoutAll: (token: string) => post(t.app, '/logout-all', undefined, bearer(token)),
  };

  it('the unchanged token, re-signed, is accepted by GET /sessions, GET /verify and POST /logout-all', async () => {
    // A user of its own: logout-all ends every session of its user.
    const own = await register(t.app);
    const login = await loginNative(t.app, own.email);
    const token = await resign(login.access, {}, context());
    expect((await call.sessions(token)).statusCode).toBe(200);
    expect((await call.verify(token)).statusCode).toBe(200);
    expect((await call.logoutAll(token)).statusCode).toBe(204);
    expect((await call.verify(login.access)).statusCode).toBe(401);
  });

  it.each(forgeries)('%s: 401 invalid_token from GET /sessions, GET /verify and POST /logout-all', async (_name, change) => {
    const login = await loginNative(t.app, email);
    const token = await resign(login.access, change, context());
    for (const [endpoint, send] of Object.entries(call)) {
      const res = await send(token);
      expect({ endpoint, status: res.statusCode, body: res.body ? (res.json() as unknown) : '' }).toEqual({
        endpoint,
        status: 401,
        body: expect.objectContaining({ error: 'invalid_token' }),
      });
      expect(res.headers['www-authenticate']).toMatch(/^Bearer error="invalid_token"/);
    }
    // The refused logout-all revoked nothing.
    expect((await call.verify(login.access)).statusCode).toBe(200);
  });
});
