import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StoreUnavailableError } from '../../src/errors.js';
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

/**
 * The requests gateways send, as they send them: nginx auth_request (covered above and in
 * test/e2e/gateway.test.ts), Traefik ForwardAuth and Envoy ext_authz in HTTP mode.
 */
describe('forward auth as each gateway asks', () => {
  let t: TestApp;
  let access: string;
  let userId: string;
  beforeAll(async () => {
    t = await buildTestApp('redis');
    const user = await register(t.app);
    userId = user.id;
    access = (await loginNative(t.app, user.email)).access;
  });
  afterAll(async () => t.close());

  const shapes: Array<{ name: string; method: 'GET' | 'POST' | 'PUT' | 'DELETE' | 'PATCH' | 'HEAD' | 'OPTIONS'; url: string; headers: Record<string, string>; payload?: string }> = [
    {
      // Traefik ForwardAuth: always GET to the configured address, the original request in X-Forwarded-*,
      // the client's headers copied (hop-by-hop ones removed).
      name: 'Traefik ForwardAuth',
      method: 'GET',
      url: '/verify',
      headers: {
        'x-forwarded-method': 'DELETE',
        'x-forwarded-proto': 'https',
        'x-forwarded-host': 'api.example.com',
        'x-forwarded-uri': '/orders/42?expand=items',
        'x-forwarded-for': '203.0.113.9',
        'user-agent': 'curl/8.5.0',
        accept: '*/*',
      },
    },
    {
      // Traefik with preserveRequestMethod and forwardBody: the original method and body, any content type.
      name: 'Traefik ForwardAuth, method and body preserved',
      method: 'POST',
      url: '/verify',
      headers: { 'x-forwarded-method': 'POST', 'x-forwarded-uri': '/orders', 'content-type': 'application/json' },
      payload: '{"not": "parsed",',
    },
    {
      // Envoy ext_authz http_service with path_prefix /verify: the original method and the original path
      // appended; no body, `content-length: 0`.
      name: 'Envoy ext_authz',
      method: 'PUT',
      url: '/verify/orders/42?expand=items',
      headers: { 'content-length': '0', 'x-forwarded-proto': 'https', 'x-request-id': '0b9c1d2e-5f3a-4c7e-9a1b-2c3d4e5f6a7b' },
    },
    {
      // Envoy with with_request_body: a buffered body without its content type (not an allowed header).
      name: 'Envoy ext_authz with the body',
      method: 'PATCH',
      url: '/verify/orders/42',
      headers: { 'x-envoy-auth-partial-body': 'false' },
      payload: 'raw bytes \u0000 of any kind',
    },
    { name: 'Envoy ext_authz, DELETE at the prefix root', method: 'DELETE', url: '/verify/', headers: { 'content-length': '0' } },
    { name: 'HEAD', method: 'HEAD', url: '/verify/anything', headers: {} },
    { name: 'OPTIONS', method: 'OPTIONS', url: '/verify/anything', headers: {} },
  ];

  for (const shape of shapes) {
    it(`${shape.name}: 200 with the user for a good token, 401 without`, async () => {
      const ok = await t.app.inject({ method: shape.method, url: shape.url, headers: { ...shape.headers, ...bearer(access) }, payload: shape.payload });
      expect(ok.statusCode).toBe(200);
      expect(ok.headers['x-user-id']).toBe(userId);
      expect(ok.headers['x-client-id']).toBe('latchkey-native');
      const none = await t.app.inject({ method: shape.method, url: shape.url, headers: shape.headers, payload: shape.payload });
      expect(none.statusCode).toBe(401);
    });
  }

  it('a forged X-Forwarded-* or path changes nothing: only the token decides', async () => {
    const res = await t.app.inject({ url: '/verify/admin', headers: { 'x-forwarded-uri': '/admin', 'x-user-id': 'someone-else', authorization: 'Bearer x.y.z' } });
    expect(res.statusCode).toBe(401);
    expect(res.headers['x-user-id']).toBeUndefined();
  });
});

describe('forward auth header names', () => {
  it('are configurable, and the e-mail is sent only when a header is named for it', async () => {
    const t = await buildTestApp('memory', {
      LATCHKEY_VERIFY_USER_HEADER: 'X-Auth-Request-User',
      LATCHKEY_VERIFY_ROLES_HEADER: 'x-auth-request-groups',
      LATCHKEY_VERIFY_SESSION_HEADER: 'x-auth-session',
      LATCHKEY_VERIFY_CLIENT_HEADER: 'x-auth-client',
      LATCHKEY_VERIFY_EMAIL_HEADER: 'x-auth-request-email',
    });
    try {
      const user = await register(t.app);
      await t.store.setRoles(user.id, ['ops']);
      const login = await loginNative(t.app, user.email);
      const res = await t.app.inject({ method: 'POST', url: '/verify/x', headers: bearer(login.access) });
      expect(res.statusCode).toBe(200);
      expect(res.headers).toMatchObject({
        'x-auth-request-user': user.id,
        'x-auth-request-groups': 'ops',
        'x-auth-session': login.sessionId,
        'x-auth-client': 'latchkey-native',
        'x-auth-request-email': user.email,
      });
      expect(res.headers['x-user-id']).toBeUndefined();
    } finally {
      await t.close();
    }
    const plain = await buildTestApp('memory');
    try {
      const user = await register(plain.app);
      const res = await plain.app.inject({ url: '/verify', headers: bearer((await loginNative(plain.app, user.email)).access) });
      expect(Object.values(res.headers)).not.toContain(user.email);
    } finally {
      await plain.close();
    }
  });
});

describe('GET /verify with the e-mail header', () => {
  it('answers 503 without any identity header when the e-mail cannot be read', async () => {
    const t = await buildTestApp('memory', { LATCHKEY_VERIFY_EMAIL_HEADER: 'x-user-email' });
    try {
      const user = await register(t.app);
      const { access } = await loginNative(t.app, user.email);
      t.store.getUser = () => Promise.reject(new StoreUnavailableError('down'));
      const res = await t.app.inject({ url: '/verify', headers: bearer(access) });
      expect(res.statusCode).toBe(503);
      for (const name of ['x-user-id', 'x-user-roles', 'x-session-id', 'x-user-email', 'x-revocation-checked']) expect(res.headers[name], name).toBeUndefined();
    } finally {
      await t.close();
    }
  });
});

describe('GET /verify with the e-mail header while failing open', () => {
  it('accepts a signed token without the e-mail rather than turning the fail-open answer into a 503', async () => {
    const t = await buildTestApp('memory', { LATCHKEY_VERIFY_FAIL_OPEN: '30', LATCHKEY_VERIFY_EMAIL_HEADER: 'x-user-email' });
    try {
      const user = await register(t.app);
      const seen = await loginNative(t.app, user.email);
      const ok = await t.app.inject({ url: '/verify', headers: bearer(seen.access) });
      expect(ok.headers['x-user-email']).toBe(user.email);
      const fresh = await loginNative(t.app, user.email);
      // The store goes away: the revocation check and the e-mail read both fail.
      t.store.isAccessTokenActive = () => Promise.reject(new StoreUnavailableError('down'));
      t.store.getUser = () => Promise.reject(new StoreUnavailableError('down'));
      const open = await t.app.inject({ url: '/verify', headers: bearer(fresh.access) });
      expect(open.statusCode).toBe(200);
      expect(open.headers['x-revocation-checked']).toBe('false');
      expect(open.headers['x-user-email']).toBeUndefined();
    } finally {
      await t.close();
    }
  });
});
