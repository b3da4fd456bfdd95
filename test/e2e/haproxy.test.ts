import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, type TestApp, listenLocal } from '../helpers/app.js';
import { PASSWORD, uniqueEmail } from '../helpers/client.js';
import type { AddressInfo } from 'node:net';
import { freePort } from '../support/redis-server.js';

/**
 * HAProxy (Debian's build, with Lua) in front of an upstream, asking latchkey through the shipped example:
 * examples/haproxy/haproxy.cfg and latchkey-auth.lua, used as they are.
 */
describe('HAProxy forward auth (examples/haproxy)', () => {
  let t: TestApp;
  let base: string;
  let gw: string;
  let haproxy: ChildProcess;
  let upstream: Server;
  let seen: { method?: string; url?: string; headers: IncomingHttpHeaders } = { headers: {} };
  let log = '';

  beforeAll(async () => {
    t = await buildTestApp('redis', {}, { clock: Date.now });
    base = await listenLocal(t.app);
    upstream = createServer((req, res) => {
      seen = { method: req.method, url: req.url, headers: req.headers };
      req.resume();
      res.end('upstream ok');
    });
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', () => r()));
    const port = await freePort();
    gw = `http://127.0.0.1:${port}`;
    haproxy = spawn('haproxy', ['-db', '-f', new URL('../../examples/haproxy/haproxy.cfg', import.meta.url).pathname], {
      env: {
        ...process.env,
        LUA_DIR: new URL('../../examples/haproxy', import.meta.url).pathname,
        LATCHKEY_VERIFY_URL: `${base}/verify`,
        LISTEN_ADDR: `127.0.0.1:${port}`,
        API_ADDR: `127.0.0.1:${(upstream.address() as AddressInfo).port}`,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    haproxy.stdout!.on('data', (d: Buffer) => (log += d.toString()));
    haproxy.stderr!.on('data', (d: Buffer) => (log += d.toString()));
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      if (haproxy.exitCode !== null) throw new Error(`haproxy exited with ${haproxy.exitCode}:\n${log}`);
      if (await fetch(`${gw}/`).then(() => true, () => false)) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`haproxy did not start:\n${log}`);
  });
  afterAll(async () => {
    haproxy?.kill('SIGTERM');
    upstream?.close();
    await t?.close();
  });

  async function login() {
    const email = uniqueEmail('haproxy');
    const json = { 'content-type': 'application/json' };
    await fetch(`${base}/register`, { method: 'POST', headers: json, body: JSON.stringify({ email, password: PASSWORD }) });
    const res = await fetch(`${base}/login`, { method: 'POST', headers: json, body: JSON.stringify({ email, password: PASSWORD }) });
    return (await res.json()) as { access_token: string; refresh_token: string; session_id: string };
  }

  it('refuses without a token, with the Bearer challenge, and drops spoofed identity headers', async () => {
    const res = await fetch(`${gw}/orders`, { headers: { 'x-user-id': 'spoofed' } });
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toBe('Bearer error="invalid_token"');
  });

  it('passes any method with the user to the upstream, and refuses the token once revoked', async () => {
    const tokens = await login();
    const res = await fetch(`${gw}/orders/42?x=1`, {
      method: 'POST',
      headers: { authorization: `Bearer ${tokens.access_token}`, 'x-user-id': 'spoofed', 'content-type': 'application/json' },
      body: '{"item": 1}',
    });
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('upstream ok');
    expect(seen).toMatchObject({ method: 'POST', url: '/orders/42?x=1' });
    expect(seen.headers['x-user-id']).toBe(decodeJwt(tokens.access_token).sub);
    expect(seen.headers['x-session-id']).toBe(tokens.session_id);
    expect(seen.headers['x-client-id']).toBe('latchkey-native');

    await fetch(`${base}/logout`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ refresh_token: tokens.refresh_token }) });
    expect((await fetch(`${gw}/orders`, { method: 'DELETE', headers: { authorization: `Bearer ${tokens.access_token}` } })).status).toBe(401);
  });
});
