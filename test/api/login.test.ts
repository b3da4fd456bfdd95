import { decodeJwt, decodeProtectedHeader } from 'jose';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { PasswordHasher } from '../../src/accounts/passwords.js';
import { buildTestApp, ORIGIN, storeKinds, type TestApp } from '../helpers/app.js';
import { bearer, loginBrowser, loginNative, PASSWORD, post, register, uniqueEmail } from '../helpers/client.js';

/** The OWASP minimum latchkey hashes with: argon2id, m=19 MiB, t=2, p=1. */
const MIN_ARGON2 = { type: 'argon2id', v: '19', m: '19456', t: '2', p: '1' };

/** Type and parameters of a PHC-encoded argon2 hash; the encoding leaves the parameters' order open. */
function argon2Params(phc: string | undefined): Record<string, string> {
  const [, type = '', version = '', params = ''] = (phc ?? '').split('$');
  const entries = [version, ...params.split(',')].map((pair) => pair.split('=') as [string, string]);
  return { type, ...Object.fromEntries(entries) };
}

describe.each(storeKinds)('register and login (%s store)', (kind) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await buildTestApp(kind);
  });
  afterAll(async () => t.close());

  it('registers with a normalised e-mail and an argon2id hash of at least m=19MiB,t=2,p=1', async () => {
    const res = await post(t.app, '/register', { email: '  Mixed.Case@Example.COM ', password: PASSWORD });
    expect(res.statusCode).toBe(201);
    expect(res.json()).toEqual({ id: expect.any(String), email: 'mixed.case@example.com' });
    const user = await t.store.findUserByEmail('mixed.case@example.com');
    expect(argon2Params(user?.passwordHash)).toEqual(MIN_ARGON2);
    expect(user?.passwordHash).not.toContain(PASSWORD);
  });

  it('look-alike e-mails (full-width, case, spaces) map to one account', async () => {
    const local = `ｌｏｏｋ${Date.now()}`; // full-width letters fold to ASCII under NFKC
    const first = await post(t.app, '/register', { email: `${local}@EXAMPLE.com`, password: PASSWORD });
    expect(first.statusCode).toBe(201);
    const plain = `${local.normalize('NFKC')}@example.com`;
    const again = await post(t.app, '/register', { email: ` ${plain.toUpperCase()} `, password: PASSWORD });
    expect(again.statusCode).toBe(409);
    expect(again.json()).toEqual({ error: 'conflict', error_description: expect.any(String) });
    expect((await loginNative(t.app, plain)).refresh).toMatch(/^lk_rt_/);
  });

  it('issues a native token response with a well-formed RS256 access token', async () => {
    const user = await register(t.app);
    const res = await post(t.app, '/login', { email: user.email, password: PASSWORD }, { 'user-agent': 'test-suite' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['cache-control']).toBe('no-store');
    const body = res.json();
    expect(Object.keys(body).sort()).toEqual(
      ['access_token', 'expires_in', 'refresh_expires_in', 'refresh_token', 'session_id', 'token_type'].sort(),
    );
    expect(body).toMatchObject({ token_type: 'Bearer', expires_in: 900, refresh_expires_in: 7 * 86400 });
    expect(body.refresh_token).toMatch(/^lk_rt_/);
    expect(body.refresh_token.length).toBeGreaterThan(43 + 6);

    const header = decodeProtectedHeader(body.access_token);
    expect(header).toEqual({ alg: 'RS256', typ: 'at+jwt', kid: expect.any(String) });
    const jwks = JSON.parse((await t.app.inject('/.well-known/jwks.json')).body) as { keys: Array<{ kid: string }> };
    expect(jwks.keys.map((k) => k.kid)).toContain(header.kid);

    const claims = decodeJwt(body.access_token);
    expect(Object.keys(claims).sort()).toEqual(['aud', 'client_id', 'exp', 'iat', 'iss', 'jti', 'sid', 'sub'].sort());
    expect(claims).toMatchObject({
      iss: 'https://auth.example.com',
      aud: 'https://api.example.com',
      sub: user.id,
      sid: body.session_id,
      // RFC 9068 §2.2; no client named at login: the native channel's default client.
      client_id: 'latchkey-native',
    });
    expect(claims.exp! - claims.iat!).toBe(900);
    expect(Buffer.from(claims.jti!, 'base64url')).toHaveLength(16);
    expect(body.access_token.length).toBeLessThan(1024);
    expect(body.access_token).not.toContain(Buffer.from(user.email).toString('base64url').slice(0, 10));
  });

  it('puts roles in the access token only when the user has some', async () => {
    const user = await register(t.app);
    await t.store.setRoles(user.id, ['admin', 'billing']);
    const { access } = await loginNative(t.app, user.email);
    expect(decodeJwt(access).roles).toEqual(['admin', 'billing']);
  });

  it('browser login sets a __Host- HttpOnly Secure SameSite=Strict cookie and keeps the token out of the body', async () => {
    const user = await register(t.app);
    const { res } = await loginBrowser(t.app, user.email, t.config.cookie.name);
    expect(res.json()).not.toHaveProperty('refresh_token');
    const raw = String(res.headers['set-cookie']);
    expect(raw).toMatch(/^__Host-lk_rt=lk_rt_/);
    expect(raw).toContain('HttpOnly');
    expect(raw).toContain('Secure');
    expect(raw).toContain('SameSite=Strict');
    expect(raw).toContain('Path=/;');
    expect(raw).not.toMatch(/Domain=/i);
    expect(raw).toContain(`Max-Age=${7 * 86400}`);
  });

  it('browser login from a missing or foreign Origin is refused before anything is written', async () => {
    const user = await register(t.app);
    for (const headers of [{}, { origin: 'https://evil.example' }] as Array<Record<string, string>>) {
      const res = await post(t.app, '/login', { email: user.email, password: PASSWORD, client: 'browser' }, headers);
      expect(res.statusCode).toBe(403);
      expect(res.json().error).toBe('forbidden');
      expect(res.headers['set-cookie']).toBeUndefined();
    }
    expect(await t.store.listSessions(user.id, t.clock.now())).toEqual([]);
    const ok = await post(t.app, '/login', { email: user.email, password: PASSWORD, client: 'browser' }, { origin: ORIGIN });
    expect(ok.statusCode).toBe(200);
  });

  it('unknown e-mail, wrong password and disabled account give byte-identical answers', async () => {
    const user = await register(t.app);
    const disabled = await register(t.app);
    await t.store.setDisabled(disabled.id, true, t.clock.now());
    const answers = await Promise.all([
      post(t.app, '/login', { email: uniqueEmail('nobody'), password: PASSWORD }),
      post(t.app, '/login', { email: user.email, password: 'wrong password!' }),
      post(t.app, '/login', { email: disabled.email, password: PASSWORD }),
    ]);
    for (const res of answers) {
      expect(res.statusCode).toBe(401);
      expect(res.body).toBe(answers[0]!.body);
      expect(Object.keys(res.headers).sort()).toEqual(Object.keys(answers[0]!.headers).sort());
    }
    expect(answers[0]!.json()).toEqual({ error: 'invalid_credentials', error_description: expect.any(String) });
  });

  it('an unknown e-mail still costs an argon2 verification (no timing oracle)', async () => {
    const verify = vi.spyOn(PasswordHasher.prototype, 'verify');
    try {
      await post(t.app, '/login', { email: uniqueEmail('ghost'), password: PASSWORD });
      expect(verify).toHaveBeenCalledTimes(1);
      expect(argon2Params(verify.mock.calls[0]![0])).toEqual(MIN_ARGON2);
    } finally {
      verify.mockRestore();
    }
  });

  it('answers an unknown e-mail only once the dummy verification has finished', async () => {
    const original = PasswordHasher.prototype.verify;
    let finished = false;
    const verify = vi.spyOn(PasswordHasher.prototype, 'verify').mockImplementation(async function (this: PasswordHasher, hash: string, password: string) {
      const ok = await original.call(this, hash, password);
      // Longer than the rest of the request takes: a 401 sent before this resolves would leave `finished` false.
      await new Promise((resolve) => setTimeout(resolve, 150));
      finished = true;
      return ok;
    });
    try {
      const res = await post(t.app, '/login', { email: uniqueEmail('ghost'), password: PASSWORD });
      expect(res.statusCode).toBe(401);
      expect(finished).toBe(true);
    } finally {
      verify.mockRestore();
    }
  });

  it('own endpoints accept the fresh access token', async () => {
    const user = await register(t.app);
    const { access, sessionId } = await loginNative(t.app, user.email);
    const res = await t.app.inject({ method: 'GET', url: '/sessions', headers: bearer(access) });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual([expect.objectContaining({ id: sessionId, current: true })]);
  });
});

describe('registration switched off', () => {
  it('answers 403 forbidden and creates nothing', async () => {
    const t = await buildTestApp('memory', { LATCHKEY_REGISTRATION: 'false' });
    try {
      const email = uniqueEmail();
      const res = await post(t.app, '/register', { email, password: PASSWORD });
      expect(res.statusCode).toBe(403);
      expect(res.json().error).toBe('forbidden');
      expect(await t.store.findUserByEmail(email)).toBeNull();
    } finally {
      await t.close();
    }
  });
});
