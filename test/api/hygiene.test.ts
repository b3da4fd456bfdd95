import { connect, type AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, ORIGIN, storeKinds, type TestApp } from '../helpers/app.js';
import { bearer, loginBrowser, loginNative, PASSWORD, post, register, uniqueEmail } from '../helpers/client.js';

type Res = { statusCode: number; body: string; headers: Record<string, unknown>; json(): unknown };

function expectError(res: Res, status: number, code: string, field?: string) {
  expect(res.statusCode, res.body).toBe(status);
  const body = res.json() as { error: string; error_description: string };
  expect(Object.keys(body).sort()).toEqual(['error', 'error_description']);
  expect(body.error).toBe(code);
  if (field) expect(body.error_description).toMatch(new RegExp(`^${field}:`));
  return body;
}

/** Sends raw bytes over a socket and returns the status line and body (for what inject cannot express). */
async function rawRequest(port: number, request: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let data = '';
    socket.on('data', (d: Buffer) => (data += d.toString()));
    socket.on('error', reject);
    socket.on('end', () => {
      const [head = '', body = ''] = data.split('\r\n\r\n');
      resolve({ status: Number(head.split(' ')[1]), body });
    });
    socket.write(request);
  });
}

describe.each(storeKinds)('request hygiene (%s store)', (kind) => {
  let t: TestApp;
  let port: number;
  const lines: Array<Record<string, unknown>> = [];
  beforeAll(async () => {
    const logger = pino(
      { level: 'info' },
      new Writable({
        write(chunk: Buffer, _e, done) {
          for (const line of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(line) as Record<string, unknown>);
          done();
        },
      }),
    );
    t = await buildTestApp(kind, {}, { logger });
    await t.app.listen({ host: '127.0.0.1', port: 0 });
    port = (t.app.server.address() as AddressInfo).port;
  });
  afterAll(async () => t.close());

  describe('ambiguous credentials are refused, never settled by "first wins"', () => {
    it('an access token in the URL, with or without the header', async () => {
      const user = await register(t.app);
      const { access } = await loginNative(t.app, user.email);
      for (const url of [`/verify?access_token=${access}`, `/sessions?access_token=${access}`]) {
        expectError(await t.app.inject({ url, headers: bearer(access) }), 400, 'invalid_request', 'access_token');
        expectError(await t.app.inject({ url }), 400, 'invalid_request', 'access_token');
      }
    });

    it('two Authorization headers', async () => {
      const user = await register(t.app);
      const { access } = await loginNative(t.app, user.email);
      const res = await rawRequest(
        port,
        `GET /verify HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${access}\r\nAuthorization: Bearer x.y.z\r\nConnection: close\r\n\r\n`,
      );
      expect(res.status).toBe(400);
      expect(JSON.parse(res.body)).toEqual({ error: 'invalid_request', error_description: expect.stringMatching(/^authorization:/) });
    });

    it('two refresh cookies', async () => {
      const user = await register(t.app);
      const a = await loginBrowser(t.app, user.email, t.config.cookie.name);
      const b = await loginBrowser(t.app, user.email, t.config.cookie.name);
      const name = t.config.cookie.name;
      const res = await t.app.inject({ method: 'POST', url: '/refresh', headers: { origin: ORIGIN, cookie: `${name}=${a.cookie}; ${name}=${b.cookie}` } });
      expectError(res, 400, 'invalid_request', 'cookie');
    });
  });

  it('every malformed refresh token is the same 401 invalid_grant, an access token or a huge string too', async () => {
    const user = await register(t.app);
    const { access } = await loginNative(t.app, user.email);
    const bodies = new Set<string>();
    for (const token of [access, 'x'.repeat(3000), 'lk_rt_x', '\u202e']) {
      const res = await post(t.app, '/refresh', { refresh_token: token });
      expectError(res, 401, 'invalid_grant');
      bodies.add(res.body);
    }
    expect(bodies.size).toBe(1);
  });

  it('sends nosniff and no-store where they matter: JSON, errors and the 204s of logout', async () => {
    const user = await register(t.app);
    const login = await loginNative(t.app, user.email);
    const answers = [
      await t.app.inject('/healthz'),
      await t.app.inject('/nowhere'),
      await post(t.app, '/logout', { refresh_token: login.refresh }, bearer(login.access)),
    ];
    const other = await loginNative(t.app, user.email);
    const all = await post(t.app, '/logout-all', undefined, bearer(other.access));
    answers.push(all);
    // The whole set, on a success, an error, a 404 and a 204 alike (worked out once at start-up).
    const security = {
      'content-security-policy': "default-src 'none';frame-ancestors 'none'",
      'cross-origin-opener-policy': 'same-origin',
      'cross-origin-resource-policy': 'same-site',
      'origin-agent-cluster': '?1',
      'referrer-policy': 'no-referrer',
      'strict-transport-security': 'max-age=31536000; includeSubDomains',
      'x-content-type-options': 'nosniff',
      'x-dns-prefetch-control': 'off',
      'x-download-options': 'noopen',
      'x-frame-options': 'SAMEORIGIN',
      'x-permitted-cross-domain-policies': 'none',
      'x-xss-protection': '0',
    };
    // Forward auth's refusals too (a gateway may relay them); its 200 only goes to the gateway.
    const third = await loginNative(t.app, user.email);
    const refused = await t.app.inject({ url: '/verify', headers: bearer(other.access) });
    expect(refused.statusCode).toBe(401);
    answers.push(refused);
    for (const res of answers) expect(res.headers).toMatchObject(security);
    const accepted = await t.app.inject({ url: '/verify/orders/42', method: 'POST', headers: bearer(third.access) });
    expect(accepted.statusCode).toBe(200);
    expect(accepted.headers['x-user-id']).toBe(user.id);
    for (const name of Object.keys(security)) expect(accepted.headers[name]).toBeUndefined();
    // A browser's preflight to it is answered before any handler, with them.
    const preflight = await t.app.inject({
      method: 'OPTIONS',
      url: '/verify',
      headers: { origin: ORIGIN, 'access-control-request-method': 'GET', 'access-control-request-headers': 'authorization' },
    });
    expect(preflight.statusCode).toBe(204);
    expect(preflight.headers['access-control-allow-origin']).toBe(ORIGIN);
    expect(preflight.headers).toMatchObject(security);
    expect(answers[2]!.statusCode).toBe(204);
    expect(answers[2]!.headers['cache-control']).toBe('no-store');
    expect(all.statusCode).toBe(204);
    expect(all.headers['cache-control']).toBe('no-store');
  });

  describe('text must be clean UTF-8, sizes are bytes', () => {
    const bad = {
      NUL: 'a\u0000b@example.com',
      bell: 'a\u0007b@example.com',
      'bidi override': 'a\u202Egnp.b@example.com',
      'zero-width space': 'a\u200Bb@example.com',
      'lone surrogate': 'a\uD800b@example.com',
      'byte order mark': '\uFEFFab@example.com',
    };
    for (const [what, email] of Object.entries(bad)) {
      it(`an e-mail with a ${what} is a 400 naming the field, at registration and login`, async () => {
        expectError(await post(t.app, '/register', { email, password: PASSWORD }), 400, 'invalid_request', 'email');
        expectError(await post(t.app, '/login', { email, password: PASSWORD }), 400, 'invalid_request', 'email');
      });
    }

    it('a password with a control character or a lone surrogate is refused; any other character is fine', async () => {
      for (const password of [`${PASSWORD}\u0000`, `${PASSWORD}\uDC00`]) {
        expectError(await post(t.app, '/register', { email: uniqueEmail(), password }), 400, 'invalid_request', 'password');
      }
      const email = uniqueEmail();
      const fancy = 'pässwörd 🔑 with spaces and \u200B';
      expect((await post(t.app, '/register', { email, password: fancy })).statusCode).toBe(201);
      expect((await post(t.app, '/login', { email, password: fancy })).statusCode).toBe(200);
    });

    it('the password cap counts bytes: 1024 of them, not characters', async () => {
      expect((await post(t.app, '/register', { email: uniqueEmail(), password: 'a'.repeat(1024) })).statusCode).toBe(201);
      // 513 characters, 1026 bytes.
      expectError(await post(t.app, '/register', { email: uniqueEmail(), password: 'é'.repeat(513) }), 400, 'invalid_request', 'password');
      expectError(await post(t.app, '/login', { email: uniqueEmail(), password: '€'.repeat(342) }), 400, 'invalid_request', 'password');
    });

    it('a charset other than UTF-8 is a 415; a byte order mark or bytes that are not UTF-8 a 400', async () => {
      const body = JSON.stringify({ email: uniqueEmail(), password: PASSWORD });
      const send = (payload: string | Buffer, type = 'application/json') =>
        t.app.inject({ method: 'POST', url: '/register', headers: { 'content-type': type }, payload });
      expectError(await send(body, 'application/json; charset=iso-8859-1'), 415, 'unsupported_media_type');
      expectError(await send(body, 'application/json; charset=utf-16'), 415, 'unsupported_media_type');
      expectError(await send(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(body)])), 400, 'invalid_request', 'body');
      expectError(await send(Buffer.from(`{"email":"a\xff@example.com","password":"${PASSWORD}"}`, 'latin1')), 400, 'invalid_request', 'body');
      expect((await send(body, 'application/json; charset=UTF-8')).statusCode).toBe(201);
    });
  });

  describe('errors keep the contract shape and never echo what the client sent', () => {
    it('a malformed escape or an over-long id in the path', async () => {
      const user = await register(t.app);
      const { access } = await loginNative(t.app, user.email);
      const malformed = await t.app.inject({ method: 'DELETE', url: '/sessions/%ZZ', headers: bearer(access) });
      expectError(malformed, 400, 'invalid_request');
      expect(malformed.body).not.toContain('%ZZ');
      expect(malformed.headers['x-content-type-options']).toBe('nosniff');
      for (const id of ['i'.repeat(70), 'i'.repeat(101), 'i'.repeat(300)]) {
        const res = await t.app.inject({ method: 'DELETE', url: `/sessions/${id}`, headers: bearer(access) });
        expect([400, 404]).toContain(res.statusCode);
        expectError(res, res.statusCode, res.statusCode === 400 ? 'invalid_request' : 'not_found');
        expect(res.body).not.toContain('iiiiiiiiii');
      }
    });

    it('unknown fields are named only when they are plain names', async () => {
      const res = await post(t.app, '/login', { email: uniqueEmail(), password: PASSWORD, '<img src=x onerror=alert(1)>': 1, extra: 2 });
      const body = expectError(res, 400, 'invalid_request', 'body');
      expect(res.body).not.toMatch(/<img|onerror/);
      expect(body.error_description).toContain('extra');
    });
  });

  it('failed logins are events and log lines with request id, IP and user agent, never a clear e-mail', async () => {
    const user = await register(t.app);
    const unknown = uniqueEmail('ghost');
    lines.length = 0;
    t.events.length = 0;
    await post(t.app, '/login', { email: unknown, password: PASSWORD }, { 'user-agent': 'probe/1.0' });
    await post(t.app, '/login', { email: user.email, password: 'wrong-password' }, { 'user-agent': 'probe/1.0' });
    const failures = t.events.filter((e) => e.type === 'login_failed');
    expect(failures).toEqual([
      { type: 'login_failed', userId: null, emailHash: expect.any(String), reason: 'unknown_account', ip: '127.0.0.1', userAgent: 'probe/1.0' },
      { type: 'login_failed', userId: user.id, reason: 'wrong_password', ip: '127.0.0.1', userAgent: 'probe/1.0' },
    ]);
    const logged = lines.filter((l) => l.event === 'login_failed');
    expect(logged).toHaveLength(2);
    for (const line of logged) expect(line).toMatchObject({ reqId: expect.any(String), ip: '127.0.0.1', userAgent: 'probe/1.0' });
    const everything = JSON.stringify([failures, lines]);
    expect(everything).not.toContain(unknown);
    expect(everything).not.toContain(unknown.split('@')[0]);
  });
});
