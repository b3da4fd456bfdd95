import { createHmac, createPublicKey, generateKeyPairSync, sign } from 'node:crypto';
import fc from 'fast-check';
import { decodeJwt, decodeProtectedHeader, exportJWK, type JWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NO_CONTEXT } from '../../src/audit/context.js';
import { errorStatus } from '../../src/errors.js';
import { buildTestApp, ORIGIN, type TestApp } from '../helpers/app.js';
import { bearer, loginBrowser, loginNative, PASSWORD, refreshNative } from '../helpers/client.js';

/**
 * Property-based fuzzing of every endpoint (fast-check): arbitrary methods, paths, headers, cookies and
 * bodies, and forged access tokens. Whatever arrives: never a 5xx, every error in the contract shape, no
 * token issued, and the known user's state untouched. `npm test` runs a bounded number of cases;
 * `npm run fuzz` runs LATCHKEY_FUZZ_RUNS (default 2000) of each.
 */
const RUNS = Number(process.env.LATCHKEY_FUZZ_RUNS ?? 25);
const TIMEOUT = Math.max(60_000, RUNS * 400);

const ENDPOINTS: Array<[string, string]> = [
  ['POST', '/register'],
  ['POST', '/login'],
  ['POST', '/refresh'],
  ['POST', '/logout'],
  ['POST', '/logout-all'],
  ['GET', '/sessions'],
  ['DELETE', '/sessions/x'],
  ['GET', '/verify'],
  ['GET', '/.well-known/jwks.json'],
  ['GET', '/healthz'],
  ['GET', '/readyz'],
];
const CODES = new Set(Object.keys(errorStatus));

type Res = { statusCode: number; body: string; headers: Record<string, unknown> };

/** What must hold for any response to hostile input. */
function checkResponse(res: Res, cookieName: string): void {
  expect(res.statusCode, res.body).toBeLessThan(500);
  if (res.statusCode >= 400) {
    const body = JSON.parse(res.body) as Record<string, unknown>;
    expect(Object.keys(body).sort()).toEqual(['error', 'error_description']);
    expect(CODES.has(String(body.error))).toBe(true);
    expect(errorStatus[body.error as keyof typeof errorStatus]).toBe(res.statusCode);
    expect(typeof body.error_description).toBe('string');
  }
  // No token issued: no token response, no refresh cookie with a value.
  expect(res.body).not.toMatch(/"(access|refresh)_token"/);
  const setCookie = ([] as unknown[]).concat(res.headers['set-cookie'] ?? []).map(String);
  for (const c of setCookie) if (c.startsWith(`${cookieName}=`)) expect(c).toMatch(new RegExp(`^${cookieName}=;`));
}

const printable = fc.stringMatching(/^[\x20-\x7e]{0,80}$/);
const text = fc.oneof(fc.string({ maxLength: 60 }), fc.string({ unit: 'binary', maxLength: 30 }), printable);
const fieldValue = fc.oneof(text, fc.integer(), fc.boolean(), fc.constant(null), fc.array(text, { maxLength: 3 }), fc.object({ maxDepth: 1 }));
const bodyObject = fc.dictionary(
  fc.oneof(fc.constantFrom('email', 'password', 'refresh_token', 'client', '__proto__', 'constructor'), fc.string({ maxLength: 12 })),
  fieldValue,
  { maxKeys: 5 },
);
const payload = fc.oneof(
  bodyObject.map((o) => JSON.stringify(o)),
  fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)),
  text,
  fc.uint8Array({ maxLength: 200 }).map((a) => Buffer.from(a)),
  fc.constant('{"__proto__":{"admin":true}}'),
  fc.constant('{"constructor":{"prototype":{"x":1}}}'),
);
const contentType = fc.constantFrom(
  'application/json',
  'application/json; charset=utf-8',
  'application/json; charset=latin1',
  'application/JSON',
  'text/plain',
  'application/x-www-form-urlencoded',
  'multipart/form-data; boundary=x',
  'application/json, text/plain',
  '',
);

describe('fuzz: hostile requests to every endpoint', () => {
  let t: TestApp;
  let known: { id: string; email: string; refresh: string; access: string; cookie: string };

  beforeAll(async () => {
    // Registration off: a random valid body must not be able to change state.
    t = await buildTestApp('memory', { LATCHKEY_REGISTRATION: 'false' });
    const email = `fuzz-${Date.now()}@example.com`;
    const { id } = await t.app.latchkey.accounts.register(email, PASSWORD, NO_CONTEXT);
    const native = await loginNative(t.app, email);
    const browser = await loginBrowser(t.app, email, t.config.cookie.name);
    known = { id, email, refresh: native.refresh, access: native.access, cookie: browser.cookie };
  });
  afterAll(async () => t.close());

  async function knownState() {
    const sessions = await t.store.listSessions(known.id, t.clock.now());
    const user = await t.store.getUser(known.id);
    return { sessions: sessions.map((s) => [s.id, s.lastUsedAt]), user };
  }

  it('arbitrary methods, paths, headers, cookies and bodies', { timeout: TIMEOUT }, async () => {
    const before = await knownState();
    const name = t.config.cookie.name;
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          endpoint: fc.oneof(fc.constantFrom(...ENDPOINTS), fc.tuple(fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'), fc.constantFrom(...ENDPOINTS.map((e) => e[1])))),
          suffix: fc.oneof(fc.constant(''), fc.constantFrom('?access_token=x', '/%ZZ', '//', '/..%2f', '?a=%00'), printable.map((s) => `?q=${encodeURIComponent(s)}`)),
          contentType,
          payload: fc.option(payload, { nil: undefined }),
          authorization: fc.option(fc.oneof(printable, printable.map((s) => `Bearer ${s}`), fc.constant(`Bearer ${'A'.repeat(50)}.${'B'.repeat(50)}.`)), { nil: undefined }),
          cookie: fc.option(fc.oneof(printable, printable.map((v) => `${name}=${encodeURIComponent(v)}`), fc.constant(`${name}=a; ${name}=b`)), { nil: undefined }),
          origin: fc.option(fc.oneof(fc.constant(ORIGIN), fc.constant('https://evil.example'), printable), { nil: undefined }),
          xff: fc.option(printable, { nil: undefined }),
        }),
        async (r) => {
          const [method, path] = r.endpoint;
          const headers: Record<string, string> = {};
          if (r.payload !== undefined && r.contentType) headers['content-type'] = r.contentType;
          if (r.authorization !== undefined) headers.authorization = r.authorization;
          if (r.cookie !== undefined) headers.cookie = r.cookie;
          if (r.origin !== undefined) headers.origin = r.origin;
          if (r.xff !== undefined) headers['x-forwarded-for'] = r.xff;
          const res = await t.app.inject({
            method: method as 'GET',
            url: path + r.suffix,
            headers,
            payload: method === 'GET' || method === 'OPTIONS' ? undefined : r.payload,
          });
          checkResponse(res, name);
        },
      ),
      { numRuns: RUNS * 4 },
    );
    expect(await knownState()).toEqual(before);
  });

  it('forged and tampered access tokens are refused everywhere and change nothing', { timeout: TIMEOUT }, async () => {
    const before = await knownState();
    const header = decodeProtectedHeader(known.access);
    const claims = decodeJwt(known.access);
    const [realHead, realBody, realSig] = known.access.split('.') as [string, string, string];
    const enc = (v: unknown) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');
    const jwks = (await t.app.inject('/.well-known/jwks.json')).json() as { keys: JWK[] };
    const publicJwk = jwks.keys.find((k) => k.kid === header.kid)!;
    const publicPem = createPublicKey({ key: publicJwk as never, format: 'jwk' }).export({ type: 'spki', format: 'pem' }).toString();
    const { privateKey: attacker, publicKey: attackerPublic } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const attackerJwk = await exportJWK(attackerPublic);
    const hs256 = (head: object, body: object, secret: string | Buffer) => {
      const input = `${enc(head)}.${enc(body)}`;
      return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
    };
    // Signed with node:crypto rather than jose, which refuses to sign some of these claims.
    const withAttackerKey = (extra: Record<string, unknown>, body: Record<string, unknown>) => {
      const input = `${enc({ ...header, ...extra })}.${enc(body)}`;
      return `${input}.${sign('sha256', Buffer.from(input), attacker).toString('base64url')}`;
    };

    const claimEdits = fc.record(
      {
        sub: fc.oneof(fc.constant(known.id), fc.uuid(), text),
        exp: fc.oneof(fc.constant(claims.exp), fc.constant(Number.POSITIVE_INFINITY), fc.double(), fc.constant(Number.MAX_SAFE_INTEGER), text),
        iat: fc.oneof(fc.constant(claims.iat), fc.integer(), fc.constant(-1)),
        iss: fc.oneof(fc.constant(claims.iss), text),
        aud: fc.oneof(fc.constant(claims.aud), text, fc.array(text, { maxLength: 2 })),
        roles: fc.oneof(fc.constant(['admin']), fc.constant('admin'), fieldValue),
        jti: fc.oneof(fc.constant(claims.jti), text),
      },
      { requiredKeys: [] },
    );
    const forged: fc.Arbitrary<string> = fc.oneof(
      // alg none and its spellings, with or without a signature.
      fc
        .tuple(fc.constantFrom('none', 'None', 'NONE', 'nOnE', ''), claimEdits, fc.constantFrom('', realSig))
        .map(([alg, edits, sig]) => `${enc({ ...header, alg })}.${enc({ ...claims, ...edits })}.${sig}`),
      // HS256 keyed with the public key (PEM, JWK JSON, modulus).
      fc
        .tuple(claimEdits, fc.constantFrom(publicPem, JSON.stringify(publicJwk), String(publicJwk.n)))
        .map(([edits, secret]) => hs256({ ...header, alg: 'HS256' }, { ...claims, ...edits }, secret)),
      // The real signature over a tampered payload or header.
      claimEdits.map((edits) => `${realHead}.${enc({ ...claims, ...edits })}.${realSig}`),
      fc.constantFrom(
        `${enc({ ...header, typ: 'JWT' })}.${realBody}.${realSig}`,
        `${enc({ ...header, crit: ['exp'] })}.${realBody}.${realSig}`,
        `${enc({ ...header, b64: false, crit: ['b64'] })}.${realBody}.${realSig}`,
        `${realHead}.${realBody}.${realSig}==`,
        `${realHead}.${realBody}.${realSig.slice(0, -2)}`,
        `\uFEFF${known.access}`,
        JSON.stringify({ protected: realHead, payload: realBody, signature: realSig }),
        `${realHead}.${realBody}`,
        `${realHead}..${realSig}`,
        // Numbers JSON can write but JavaScript cannot hold.
        `${realHead}.${enc(JSON.stringify(claims).replace(/"exp":\d+/, '"exp":1e309'))}.${realSig}`,
        withAttackerKey({}, {}).replace(/\.[^.]+\./, `.${enc(JSON.stringify(claims).replace(/"exp":\d+/, '"exp":1e309'))}.`),
      ),
      // Signed by an attacker who names their own key (jwk, jku, x5u) or an odd kid.
      fc
        .tuple(
          fc.constantFrom<Record<string, unknown>>(
            { jwk: attackerJwk },
            { jku: 'https://evil.example/jwks.json' },
            { x5u: 'https://evil.example/cert.pem' },
            { kid: '../../../../dev/null' },
            { kid: `${String(header.kid)}\u0000` },
            { kid: 'x'.repeat(2000) },
            { kid: 42 },
            { kid: { $ne: null } },
            { crit: ['exp'] },
            {},
          ),
          claimEdits,
        )
        .map(([extra, edits]) => withAttackerKey(extra, { ...claims, ...edits })),
    );

    const endpoints: Array<[string, string]> = [
      ['GET', '/verify'],
      ['GET', '/sessions'],
      ['POST', '/logout-all'],
      ['DELETE', `/sessions/${decodeJwt(known.access).sid as string}`],
    ];
    await fc.assert(
      fc.asyncProperty(forged, fc.constantFrom(...endpoints), async (token, [method, url]) => {
        // A genuine token with its real signature and unchanged claims is the only thing that may pass.
        if (token === known.access) return;
        const res = await t.app.inject({ method: method as 'GET', url, headers: { authorization: `Bearer ${token}` } });
        checkResponse(res, t.config.cookie.name);
        expect([400, 401]).toContain(res.statusCode);
        // A Bearer-only logout with a forgery is a no-op.
        const logout = await t.app.inject({ method: 'POST', url: '/logout', headers: { authorization: `Bearer ${token}` } });
        checkResponse(logout, t.config.cookie.name);
      }),
      { numRuns: RUNS * 4 },
    );
    expect(await knownState()).toEqual(before);
    // The genuine credentials still work: nothing above revoked or spent them.
    expect((await t.app.inject({ url: '/verify', headers: bearer(known.access) })).statusCode).toBe(200);
    expect((await refreshNative(t.app, known.refresh)).statusCode).toBe(200);
  });
});
