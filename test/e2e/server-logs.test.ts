import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { uniqueEmail } from '../helpers/client.js';
import { freePort } from '../support/redis-server.js';

/**
 * The logger a real start-up builds (src/server.ts, no logger handed in), read from the process's stdout:
 * requests carrying credentials in every place a client can put them leave none of them in the log.
 */
describe('the server started as in production logs no credential and no query string', () => {
  let child: ChildProcess;
  let keysDir: string;
  let base: string;
  let output = '';
  const exited = () => new Promise<void>((resolve) => (child.exitCode !== null ? resolve() : child.once('exit', () => resolve())));

  beforeAll(async () => {
    keysDir = await mkdtemp(join(tmpdir(), 'lk-server-logs-'));
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    // No REDIS_URL: the embedded store. No logger override: buildApp makes its own, as in production.
    const env = {
      PATH: process.env.PATH,
      NODE_ENV: 'development',
      HOST: '127.0.0.1',
      PORT: String(port),
      LATCHKEY_METRICS_PORT: '0',
      LATCHKEY_ADMIN_PORT: '0',
      LOG_LEVEL: 'debug',
      LATCHKEY_KEYS_DIR: keysDir,
    };
    child = spawn(process.execPath, ['--import', 'tsx', '--conditions=latchkey-source', 'src/server.ts'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`latchkey did not start:\n${output}`)), 30_000);
      const onData = (d: Buffer) => {
        output += d.toString();
        if (output.includes('latchkey ready')) {
          clearTimeout(timer);
          resolve();
        }
      };
      child.stdout?.on('data', onData);
      child.stderr?.on('data', onData);
      child.once('exit', (code) => reject(new Error(`latchkey exited with ${code}:\n${output}`)));
    });
  });
  afterAll(async () => {
    if (child.exitCode === null) {
      child.kill('SIGTERM');
      await exited();
    }
    await rm(keysDir, { recursive: true, force: true });
  });

  it('after register, login, refresh, Bearer calls with cookies and query strings, and failed logins', async () => {
    const secrets: Record<string, string> = {
      password: 'correct-horse-4f1c9e-battery',
      wrongPassword: 'wrong-horse-8d27aa-battery',
      cookie: 'cookie-secret-5b0e71d3',
      query: 'query-secret-93ac1e07',
      malformedBody: 'malformed-secret-6e2f48',
    };
    const email = uniqueEmail('logs');
    const json = { 'content-type': 'application/json' };
    const send = (path: string, init: RequestInit = {}) => fetch(`${base}${path}`, init);
    const postJson = (path: string, body: unknown, headers: Record<string, string> = {}) =>
      send(path, { method: 'POST', headers: { ...json, ...headers }, body: JSON.stringify(body) });

    expect((await postJson('/register', { email, password: secrets.password })).status).toBe(201);
    const login = (await (await postJson('/login', { email, password: secrets.password })).json()) as Record<string, string>;
    secrets.access = login.access_token!;
    secrets.signature = login.access_token!.split('.')[2]!;
    secrets.refresh = login.refresh_token!;
    const refreshed = (await (await postJson('/refresh', { refresh_token: login.refresh_token })).json()) as Record<string, string>;
    secrets.refreshed = refreshed.refresh_token!;
    const auth = { authorization: `Bearer ${refreshed.access_token}`, cookie: `__Host-lk_rt=${secrets.cookie}` };
    secrets.refreshedAccess = refreshed.access_token!;

    // A token in the URL is refused (400), and its request is logged without the query all the same.
    expect((await send(`/sessions?access_token=${secrets.query}`, { headers: auth })).status).toBe(400);
    expect((await send(`/sessions?page=${secrets.query}`, { headers: auth })).status).toBe(200);
    expect((await send(`/verify?token=${secrets.query}#frag`, { headers: auth })).status).toBe(200);
    expect((await send(`/no-such-endpoint?code=${secrets.query}`, { headers: auth })).status).toBe(404);
    expect((await postJson('/login', { email, password: secrets.wrongPassword })).status).toBe(401);
    const malformed = await send('/login', { method: 'POST', headers: json, body: `{"email":"${email}","password":"${secrets.malformedBody}" x}` });
    expect(malformed.status).toBe(400);
    secrets.unknownRefresh = `lk_rt_${'x'.repeat(43)}`;
    expect((await postJson(`/refresh?refresh_token=${secrets.query}`, { refresh_token: secrets.unknownRefresh })).status).toBe(401);
    expect((await postJson('/logout', { refresh_token: secrets.refreshed }, { authorization: auth.authorization })).status).toBe(204);

    child.kill('SIGTERM');
    await exited();
    const lines = output.split('\n').filter((l) => l.startsWith('{'));
    const logged = lines.map((l) => JSON.parse(l) as { msg?: string; req?: { url?: string } });
    // The requests were logged, by path.
    const urls = logged.filter((l) => l.msg === 'incoming request').map((l) => l.req?.url);
    expect(urls).toEqual(expect.arrayContaining(['/sessions', '/verify', '/no-such-endpoint', '/login', '/refresh', '/logout']));
    for (const [name, value] of Object.entries(secrets)) {
      expect(output.includes(value), `${name} appears in the log`).toBe(false);
    }
    expect(output).not.toContain('lk_rt_');
  });

  it('the logger buildApp makes for itself censors credentials that any code path logs', async () => {
    // The same call server.ts makes, in a process of its own, and one line logged as code in it might.
    const script = `
      const { loadConfig } = await import('./src/config.ts');
      const { buildApp } = await import('./src/app.ts');
      const app = await buildApp(loadConfig(process.env));
      app.log.child({ reqId: 'r-1' }).info({
        req: { method: 'GET', url: '/x?code=secret-q1', headers: { authorization: 'Bearer secret-a1', cookie: 'secret-c1' } },
        res: { headers: { 'set-cookie': 'secret-s1' } },
        headers: { authorization: 'Bearer secret-a2', cookie: 'secret-c2', 'set-cookie': 'secret-s2' },
        body: { password: 'secret-p1', refresh_token: 'secret-r1' },
        password: 'secret-p2', refresh_token: 'secret-r2', access_token: 'secret-t1',
        url: '/y?token=secret-q2',
      }, 'probe');
      await app.close();
    `;
    const env = { PATH: process.env.PATH, NODE_ENV: 'development', LATCHKEY_METRICS_PORT: '0', LATCHKEY_ADMIN_PORT: '0', LOG_LEVEL: 'info', LATCHKEY_KEYS_DIR: keysDir };
    const probe = spawn(process.execPath, ['--import', 'tsx', '--conditions=latchkey-source', '--input-type=module', '-e', script], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    probe.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    probe.stderr?.on('data', (d: Buffer) => (out += d.toString()));
    const code = await new Promise<number | null>((resolve) => probe.once('exit', resolve));
    expect(code, out).toBe(0);
    const line = out.split('\n').find((l) => l.includes('"probe"'));
    expect(line, out).toBeDefined();
    expect(line).toContain('[redacted]');
    expect(line).not.toMatch(/secret-/);
  });
});
