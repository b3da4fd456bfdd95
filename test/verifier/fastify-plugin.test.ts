import Fastify from 'fastify';
import { createLocalJWKSet, type JSONWebKeySet } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createVerifier, VerifyError, type Verifier } from '@latchkey/verifier';
import latchkeyAuth from '@latchkey/verifier/fastify';
import { buildTestApp, type TestApp } from '../helpers/app.js';
import { loginNative, register } from '../helpers/client.js';

describe('@latchkey/verifier/fastify', () => {
  let t: TestApp;
  let verifier: Verifier;
  const rs = Fastify();

  beforeAll(async () => {
    t = await buildTestApp('memory');
    const jwks = createLocalJWKSet((await t.app.inject('/.well-known/jwks.json')).json() as JSONWebKeySet);
    verifier = createVerifier({ issuer: t.config.issuer, audience: t.config.audience, getKey: jwks });
    // Registered in a child scope: fastify-plugin makes the decorators reach the routes beside it.
    await rs.register(async (scope) => {
      await scope.register(latchkeyAuth, { verifier });
      scope.get('/me', { preHandler: scope.requireUser }, async (request) => ({ sub: request.user?.sub, client: request.user?.client_id }));
    });
    rs.get('/down', {
      preHandler: async (request, reply) => {
        request.headers.authorization = 'Bearer a.b.c';
        return rs.requireUser(request, reply);
      },
    }, async () => 'never');
    await rs.register(latchkeyAuth, { verifier: { ...verifier, verify: async () => Promise.reject(new VerifyError('unavailable', 'redis down')) } });
  });
  afterAll(async () => {
    await rs.close();
    await verifier.close();
    await t.close();
  });

  it('accepts a canonical Bearer JWS and puts the claims on request.user', async () => {
    const user = await register(t.app);
    const { access } = await loginNative(t.app, user.email);
    const res = await rs.inject({ url: '/me', headers: { authorization: `Bearer ${access}` } });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ sub: user.id, client: 'latchkey-native' });
  });

  it('refuses anything but a canonical compact JWS, as latchkey itself does', async () => {
    const user = await register(t.app);
    const { access } = await loginNative(t.app, user.email);
    for (const authorization of [`Bearer ${access}=`, `bearer ${access}`, `Bearer  ${access}`, `Bearer ${access} `, `Bearer ${access}.x`, `Basic ${access}`, 'Bearer a/b.c+d.e']) {
      const res = await rs.inject({ url: '/me', headers: { authorization } });
      expect(res.statusCode, authorization.slice(0, 12)).toBe(401);
      expect(res.headers['www-authenticate']).toBe('Bearer error="invalid_token"');
    }
    expect((await rs.inject('/me')).statusCode).toBe(401);
  });

  it('answers 503 when revocation state is unavailable', async () => {
    const res = await rs.inject('/down');
    expect(res.statusCode).toBe(503);
    expect(res.json().error).toBe('temporarily_unavailable');
  });
});
