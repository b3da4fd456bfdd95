import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, type TestApp } from '../helpers/app.js';

describe('discovery documents (RFC 8414, OpenID Connect Discovery)', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await buildTestApp('memory');
  });
  afterAll(async () => t.close());

  it('name the issuer, the JWKS and the endpoints that exist, and advertise nothing latchkey does not do', async () => {
    for (const path of ['/.well-known/oauth-authorization-server', '/.well-known/openid-configuration']) {
      const res = await t.app.inject(path);
      expect(res.statusCode).toBe(200);
      const doc = res.json();
      expect(doc).toMatchObject({
        issuer: 'https://auth.example.com',
        jwks_uri: 'https://auth.example.com/.well-known/jwks.json',
        token_endpoint: 'https://auth.example.com/token',
        revocation_endpoint: 'https://auth.example.com/revoke',
        userinfo_endpoint: 'https://auth.example.com/userinfo',
        grant_types_supported: ['refresh_token'],
        response_types_supported: [],
        token_endpoint_auth_methods_supported: ['none'],
      });
      for (const absent of ['authorization_endpoint', 'id_token_signing_alg_values_supported', 'scopes_supported', 'registration_endpoint']) {
        expect(doc).not.toHaveProperty(absent);
      }
    }
    // Every advertised endpoint answers (not a 404) on this app.
    const doc = (await t.app.inject('/.well-known/openid-configuration')).json();
    for (const key of ['jwks_uri', 'token_endpoint', 'revocation_endpoint', 'userinfo_endpoint']) {
      const url = new URL(doc[key]);
      const method = key === 'token_endpoint' || key === 'revocation_endpoint' ? 'POST' : 'GET';
      expect((await t.app.inject({ method, url: url.pathname })).statusCode, key).not.toBe(404);
    }
  });

  it('are cacheable, with an ETag that answers 304', async () => {
    const res = await t.app.inject('/.well-known/openid-configuration');
    expect(res.headers['cache-control']).toMatch(/^public, max-age=\d+$/);
    const etag = String(res.headers.etag);
    expect(etag).toMatch(/^"[A-Za-z0-9_-]+"$/);
    const again = await t.app.inject({ url: '/.well-known/openid-configuration', headers: { 'if-none-match': `W/${etag}` } });
    expect(again.statusCode).toBe(304);
    expect(again.body).toBe('');
    const other = await t.app.inject('/.well-known/oauth-authorization-server');
    expect(other.headers.etag).not.toBe(etag);
  });
});

describe('discovery under a base path', () => {
  it('serves the documents under LATCHKEY_BASE_PATH with endpoint URLs that include it', async () => {
    const t = await buildTestApp('memory', { LATCHKEY_BASE_PATH: '/auth' });
    try {
      const doc = (await t.app.inject('/auth/.well-known/openid-configuration')).json();
      expect(doc.issuer).toBe('https://auth.example.com');
      expect(doc.token_endpoint).toBe('https://auth.example.com/auth/token');
      expect(doc.jwks_uri).toBe('https://auth.example.com/auth/.well-known/jwks.json');
      expect((await t.app.inject('/.well-known/openid-configuration')).statusCode).toBe(404);
    } finally {
      await t.close();
    }
  });

  it('an issuer with a path also gets the RFC 8414 §3.1 location, the path after the well-known name', async () => {
    const t = await buildTestApp('memory', { LATCHKEY_BASE_PATH: '/auth', LATCHKEY_ISSUER: 'https://example.com/auth' });
    try {
      const inside = (await t.app.inject('/auth/.well-known/oauth-authorization-server')).json();
      expect(inside).toMatchObject({ issuer: 'https://example.com/auth', token_endpoint: 'https://example.com/auth/token' });
      const rfc8414 = await t.app.inject('/.well-known/oauth-authorization-server/auth');
      expect(rfc8414.statusCode).toBe(200);
      expect(rfc8414.json()).toEqual(inside);
    } finally {
      await t.close();
    }
  });
});
