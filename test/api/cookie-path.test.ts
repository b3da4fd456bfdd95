import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, ORIGIN, type TestApp } from '../helpers/app.js';
import { post, PASSWORD } from '../helpers/client.js';

describe('under a base path', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await buildTestApp('memory', { LATCHKEY_BASE_PATH: '/auth' });
  });
  afterAll(async () => t.close());

  it('serves every endpoint under the prefix and scopes a __Secure- cookie to it', async () => {
    const email = `base-${Date.now()}@example.com`;
    expect((await post(t.app, '/auth/register', { email, password: PASSWORD })).statusCode).toBe(201);
    const res = await post(t.app, '/auth/login', { email, password: PASSWORD, client: 'browser' }, { origin: ORIGIN });
    expect(res.statusCode).toBe(200);
    const raw = String(res.headers['set-cookie']);
    expect(raw).toMatch(/^__Secure-lk_rt=lk_rt_/);
    expect(raw).toContain('Path=/auth;');
    expect(raw).toContain('Secure');
    expect((await post(t.app, '/register', { email: 'x@example.com', password: PASSWORD })).statusCode).toBe(404);
  });
});

describe('explicit insecure development cookies', () => {
  it('drop Secure and the prefix, and HSTS (plain http), nothing else', async () => {
    const t = await buildTestApp('memory', { LATCHKEY_COOKIE_INSECURE_DEV: 'true' });
    try {
      const email = `dev-${Date.now()}@example.com`;
      await post(t.app, '/register', { email, password: PASSWORD });
      const res = await post(t.app, '/login', { email, password: PASSWORD, client: 'browser' }, { origin: ORIGIN });
      const raw = String(res.headers['set-cookie']);
      expect(raw).toMatch(/^lk_rt=lk_rt_/);
      expect(raw).not.toContain('Secure');
      expect(raw).toContain('HttpOnly');
      expect(raw).toContain('SameSite=Strict');
      expect(res.headers['strict-transport-security']).toBeUndefined();
      expect(res.headers['x-content-type-options']).toBe('nosniff');
    } finally {
      await t.close();
    }
  });
});
