import { generateKeyPairSync } from 'node:crypto';
import { createLocalJWKSet, decodeJwt, decodeProtectedHeader, jwtVerify, SignJWT, type JSONWebKeySet } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, type TestApp } from '../helpers/app.js';
import { bearer, loginNative, PASSWORD, post, register } from '../helpers/client.js';

describe('bad input never gets past the door, and never a 5xx', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await buildTestApp('memory');
  });
  afterAll(async () => t.close());

  const expectError = (res: { statusCode: number; json(): unknown }, status: number, code: string) => {
    expect(res.statusCode).toBe(status);
    expect(res.json()).toEqual({ error: code, error_description: expect.any(String) });
  };

  it('names a missing field', async () => {
    const res = await post(t.app, '/register', { email: 'a@example.com' });
    expectError(res, 400, 'invalid_request');
    expect((res.json() as { error_description: string }).error_description).toContain('password');
  });

  it('rejects unknown fields and names them', async () => {
    const res = await post(t.app, '/login', { email: 'a@example.com', password: PASSWORD, admin: true });
    expectError(res, 400, 'invalid_request');
    expect((res.json() as { error_description: string }).error_description).toContain('admin');
  });

  it('rejects wrong types, a bad client value, a bad e-mail and a short password', async () => {
    expectError(await post(t.app, '/login', { email: 'a@example.com', password: 12345678 }), 400, 'invalid_request');
    expectError(await post(t.app, '/login', { email: 'a@example.com', password: PASSWORD, client: 'tv' }), 400, 'invalid_request');
    expectError(await post(t.app, '/register', { email: 'not-an-email', password: PASSWORD }), 400, 'invalid_request');
    expectError(await post(t.app, '/register', { email: 'a@example.com', password: 'short' }), 400, 'invalid_request');
    expectError(await post(t.app, '/login', ['a@example.com', PASSWORD]), 400, 'invalid_request');
    expectError(await post(t.app, '/login', null), 400, 'invalid_request');
  });

  it('refuses malformed JSON with 400', async () => {
    const res = await t.app.inject({ method: 'POST', url: '/login', headers: { 'content-type': 'application/json' }, payload: '{"email":' });
    expectError(res, 400, 'invalid_request');
  });

  it('refuses a body over the limit with 413', async () => {
    const res = await post(t.app, '/login', { email: 'a@example.com', password: 'x'.repeat(8000) });
    expectError(res, 413, 'payload_too_large');
  });

  it('refuses anything but JSON with 415', async () => {
    for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x']) {
      const res = await t.app.inject({ method: 'POST', url: '/login', headers: { 'content-type': type }, payload: 'email=a' });
      expectError(res, 415, 'unsupported_media_type');
    }
  });

  it('answers unknown paths with the error shape', async () => {
    expectError(await t.app.inject('/nope'), 404, 'not_found');
  });

  it('refuses Bearer tokens that are not ours: alg none, HS256 with the public key, foreign key, wrong iss/aud, wrong typ', async () => {
    const user = await register(t.app);
    const { access } = await loginNative(t.app, user.email);
    const claims = decodeJwt(access);
    const kid = decodeProtectedHeader(access).kid!;
    const jwks = JSON.parse((await t.app.inject('/.well-known/jwks.json')).body) as JSONWebKeySet;
    const enc = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const { privateKey: foreign } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const sign = (header: Record<string, unknown>, payload: Record<string, unknown>) =>
      new SignJWT(payload).setProtectedHeader({ alg: 'RS256', typ: 'at+jwt', kid, ...header }).sign(foreign);

    const forgeries = [
      `${enc({ alg: 'none', typ: 'at+jwt', kid })}.${enc(claims)}.`,
      `${enc({ alg: 'HS256', typ: 'at+jwt', kid })}.${enc(claims)}.${'A'.repeat(43)}`,
      await sign({}, claims),
      await sign({ kid: 'unknown' }, claims),
      access.slice(0, -4) + (access.endsWith('AAAA') ? 'BBBB' : 'AAAA'),
    ];
    for (const token of forgeries) {
      const res = await t.app.inject({ method: 'GET', url: '/sessions', headers: bearer(token) });
      expectError(res, 401, 'invalid_token');
      expect(res.headers['www-authenticate']).toMatch(/^Bearer error="invalid_token"/);
    }
    // A genuine token is accepted by a stock verifier pinned to our issuer, audience and RS256.
    const verified = await jwtVerify(access, createLocalJWKSet(jwks), {
      issuer: 'https://auth.example.com',
      audience: 'https://api.example.com',
      algorithms: ['RS256'],
      typ: 'at+jwt',
    });
    expect(verified.payload.sub).toBe(user.id);
    await expect(jwtVerify(access, createLocalJWKSet(jwks), { audience: 'https://other.example.com' })).rejects.toThrow();
  });

  it('refuses a missing or non-Bearer Authorization header', async () => {
    for (const headers of [{}, { authorization: 'Basic dXNlcjpwYXNz' }, { authorization: 'Bearer' }]) {
      const res = await t.app.inject({ method: 'GET', url: '/sessions', headers });
      expectError(res, 401, 'invalid_token');
    }
  });
});

describe('attempt limits', () => {
  it('login and registration attempts per IP are limited with 429 and Retry-After', async () => {
    const t = await buildTestApp('memory', { LATCHKEY_LOGIN_RATE_LIMIT: '3' });
    try {
      const statuses = [];
      for (let i = 0; i < 4; i++) statuses.push((await post(t.app, '/login', { email: 'a@example.com', password: 'wrong-password' })).statusCode);
      expect(statuses).toEqual([401, 401, 401, 429]);
      const limited = await post(t.app, '/login', { email: 'a@example.com', password: 'wrong-password' });
      expect(limited.json()).toEqual({ error: 'rate_limited', error_description: expect.any(String) });
      expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
      // Refresh is not an attempt at a password and is not limited by this.
      expect((await post(t.app, '/refresh', { refresh_token: 'lk_rt_x' })).statusCode).toBe(401);
    } finally {
      await t.close();
    }
  });
});
