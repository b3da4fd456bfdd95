import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeJwt, SignJWT } from 'jose';
import { generateKeyPairSync } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { VerifyError } from '@latchkey/verifier';
import { createVerifier } from '@latchkey/verifier';
import type { RedisStore } from '../../src/store/redis-store.js';
import { buildTestApp, createTestStore, type TestApp, listenLocal } from '../helpers/app.js';
import { PASSWORD, uniqueEmail } from '../helpers/client.js';
import { testRedisUrl } from '../support/redis.js';
import type { AddressInfo } from 'node:net';
import { freePort } from '../support/redis-server.js';

/** Starts a child process and waits until a line of its output matches. */
function startProcess(cmd: string, args: string[], env: NodeJS.ProcessEnv, ready: RegExp): Promise<{ child: ChildProcess; match: RegExpMatchArray }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const timer = setTimeout(() => reject(new Error(`${cmd} did not start:\n${out}`)), 20_000);
    const onData = (d: Buffer) => {
      out += d.toString();
      const m = out.match(ready);
      if (m) {
        clearTimeout(timer);
        resolve({ child, match: m });
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('exit', (code) => reject(new Error(`${cmd} exited with ${code}:\n${out}`)));
  });
}

describe('resource servers and gateways see revocations', () => {
  let t: TestApp;
  let base: string;
  let dispose: () => Promise<void>;
  let prefix: string;
  const children: ChildProcess[] = [];
  let upstream: Server;

  beforeAll(async () => {
    const test = await createTestStore('redis', 'gateway');
    dispose = test.dispose;
    prefix = (test.store as RedisStore).keyPrefix;
    t = await buildTestApp('redis', {}, { store: test.store, clock: Date.now });
    base = await listenLocal(t.app);
  });
  afterAll(async () => {
    for (const c of children) c.kill('SIGTERM');
    upstream?.close();
    await t.close();
    await dispose();
  });

  async function login() {
    const email = uniqueEmail('gw');
    const json = { 'content-type': 'application/json' };
    await fetch(`${base}/register`, { method: 'POST', headers: json, body: JSON.stringify({ email, password: PASSWORD }) });
    const res = await fetch(`${base}/login`, { method: 'POST', headers: json, body: JSON.stringify({ email, password: PASSWORD }) });
    return (await res.json()) as { access_token: string; refresh_token: string; session_id: string };
  }
  const logout = (refresh: string) =>
    fetch(`${base}/logout`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ refresh_token: refresh }) });

  it('the example resource server (another process) honours a logout within 1 s', async () => {
    const { child, match } = await startProcess(
      process.execPath,
      ['--import', 'tsx', '--conditions=latchkey-source', 'examples/resource-server/server.ts'],
      {
        ...process.env,
        LATCHKEY_URL: base,
        LATCHKEY_ISSUER: t.config.issuer,
        LATCHKEY_AUDIENCE: t.config.audience,
        REDIS_URL: testRedisUrl(),
        REDIS_KEY_PREFIX: prefix,
        PORT: '0',
        LOG_LEVEL: 'warn',
      },
      /listening on (http:\/\/\S+)/,
    );
    children.push(child);
    const rs = match[1]!;
    expect((await fetch(`${rs}/public`)).status).toBe(200);
    expect((await fetch(`${rs}/me`)).status).toBe(401);

    const tokens = await login();
    const me = await fetch(`${rs}/me`, { headers: { authorization: `Bearer ${tokens.access_token}` } });
    expect(me.status).toBe(200);
    expect(await me.json()).toMatchObject({ session: tokens.session_id });

    expect((await logout(tokens.refresh_token)).status).toBe(204);
    const revokedAt = Date.now();
    let status = 200;
    while (status === 200 && Date.now() - revokedAt < 2000) {
      status = (await fetch(`${rs}/me`, { headers: { authorization: `Bearer ${tokens.access_token}` } })).status;
    }
    expect(status).toBe(401);
    expect(Date.now() - revokedAt).toBeLessThan(1000);
  });

  it('nginx auth_request forwards the user to the upstream and refuses revoked tokens', async () => {
    let seen: Record<string, string | string[] | undefined> = {};
    upstream = createServer((req, res) => {
      seen = req.headers;
      res.end('upstream ok');
    });
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', () => r()));
    const upstreamPort = (upstream.address() as AddressInfo).port;
    const port = await freePort();
    const dir = await mkdtemp(join(tmpdir(), 'lk-nginx-'));
    const conf = `
daemon off;
master_process off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log notice;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  server {
    listen 127.0.0.1:${port};
    location = /_latchkey_verify {
      internal;
      proxy_pass ${base}/verify;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
    }
    location / {
      auth_request /_latchkey_verify;
      auth_request_set $user_id $upstream_http_x_user_id;
      auth_request_set $user_roles $upstream_http_x_user_roles;
      auth_request_set $session_id $upstream_http_x_session_id;
      proxy_set_header X-User-Id $user_id;
      proxy_set_header X-User-Roles $user_roles;
      proxy_set_header X-Session-Id $session_id;
      proxy_pass http://127.0.0.1:${upstreamPort};
    }
  }
}
`;
    await writeFile(join(dir, 'nginx.conf'), conf);
    const nginx = spawn('nginx', ['-p', dir, '-c', join(dir, 'nginx.conf')], { stdio: 'ignore' });
    children.push(nginx);
    const gw = `http://127.0.0.1:${port}`;
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      if (nginx.exitCode !== null) throw new Error(`nginx exited with ${nginx.exitCode}`);
      if (await fetch(`${gw}/`).then(() => true, () => false)) break;
      await new Promise((r) => setTimeout(r, 50));
    }

    expect((await fetch(`${gw}/anything`)).status).toBe(401);
    expect((await fetch(`${gw}/anything`, { headers: { 'x-user-id': 'spoofed' } })).status).toBe(401);

    const tokens = await login();
    const ok = await fetch(`${gw}/anything`, { headers: { authorization: `Bearer ${tokens.access_token}`, 'x-user-id': 'spoofed' } });
    expect(ok.status).toBe(200);
    expect(await ok.text()).toBe('upstream ok');
    expect(seen['x-user-id']).toBe(decodeJwt(tokens.access_token).sub);
    expect(seen['x-session-id']).toBe(tokens.session_id);

    expect((await logout(tokens.refresh_token)).status).toBe(204);
    expect((await fetch(`${gw}/anything`, { headers: { authorization: `Bearer ${tokens.access_token}` } })).status).toBe(401);
  });

  it('unknown kids never cause a JWKS fetch per request', async () => {
    let fetches = 0;
    const jwks = await (await fetch(`${base}/.well-known/jwks.json`)).text();
    const server = createServer((_req, res) => {
      fetches++;
      res.setHeader('content-type', 'application/json');
      res.end(jwks);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks.json`;
      const v = createVerifier({ issuer: t.config.issuer, audience: t.config.audience, jwksUrl: url });
      const tokens = await login();
      await v.verify(tokens.access_token);
      expect(fetches).toBe(1);
      const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
      const forged = await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          new SignJWT({ sid: 's' })
            .setProtectedHeader({ alg: 'RS256', typ: 'at+jwt', kid: `unknown-${i}` })
            .setIssuer(t.config.issuer)
            .setAudience(t.config.audience)
            .setSubject('u')
            .setJti(`j${i}`)
            .setIssuedAt()
            .setExpirationTime('5m')
            .sign(privateKey),
        ),
      );
      const results = await Promise.allSettled(forged.map((f) => v.verify(f)));
      for (const r of [...results, ...(await Promise.allSettled(forged.map((f) => v.verify(f))))]) {
        expect(r.status).toBe('rejected');
        expect(((r as PromiseRejectedResult).reason as VerifyError).code).toBe('invalid');
      }
      // 40 verifications with 20 unknown kids: no fetch per request. jose's remote key set refetches on an
      // unknown kid at most once per 30-second cooldown, single-flight; within it, none at all.
      expect(fetches).toBe(1);
      await v.close();
    } finally {
      server.close();
    }
  });
});
