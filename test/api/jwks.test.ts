import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, type TestApp } from '../helpers/app.js';

describe('JWKS', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await buildTestApp('memory', { LATCHKEY_JWKS_MAX_AGE: '120' });
  });
  afterAll(async () => t.close());

  it('publishes only public members, with caching headers', async () => {
    const res = await t.app.inject('/.well-known/jwks.json');
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect(res.headers['cache-control']).toBe('public, max-age=120');
    expect(res.headers.etag).toMatch(/^"[A-Za-z0-9_-]+"$/);
    const { keys } = res.json() as { keys: Array<Record<string, string>> };
    expect(keys.length).toBeGreaterThan(0);
    for (const key of keys) {
      expect(Object.keys(key).sort()).toEqual(['alg', 'e', 'kid', 'kty', 'n', 'use']);
      expect(key).toMatchObject({ kty: 'RSA', alg: 'RS256', use: 'sig' });
      expect(Buffer.from(key.n!, 'base64url').length).toBeGreaterThanOrEqual(256);
    }
  });

  it('answers 304 to a matching If-None-Match', async () => {
    const first = await t.app.inject('/.well-known/jwks.json');
    const again = await t.app.inject({ url: '/.well-known/jwks.json', headers: { 'if-none-match': String(first.headers.etag) } });
    expect(again.statusCode).toBe(304);
    expect(again.body).toBe('');
    const stale = await t.app.inject({ url: '/.well-known/jwks.json', headers: { 'if-none-match': '"other"' } });
    expect(stale.statusCode).toBe(200);
  });

  it('health and readiness', async () => {
    expect((await t.app.inject('/healthz')).json()).toEqual({ status: 'ok' });
    const ready = await t.app.inject('/readyz');
    expect(ready.statusCode).toBe(200);
    expect(ready.json()).toEqual({ status: 'ready' });
  });
});
