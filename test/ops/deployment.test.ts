import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { loadConfig } from '../../src/config.js';
import { listenMetrics } from '../../src/metrics.js';
import { buildTestApp, type TestApp } from '../helpers/app.js';
import { PASSWORD, uniqueEmail } from '../helpers/client.js';

const read = (file: string) => readFileSync(new URL(`../../${file}`, import.meta.url), 'utf8');

interface Service {
  profiles?: string[];
  image?: string;
  build?: string;
  command?: string[] | string;
  environment?: Record<string, string>;
  ports?: string[];
  expose?: string[];
  secrets?: string[];
  healthcheck?: { test: string[] };
  depends_on?: Record<string, { condition: string }>;
}

/** No Docker engine here: the compose file is checked as data, and its latchkey settings by loadConfig. */
describe('docker-compose.yml', () => {
  const compose = parse(read('docker-compose.yml'), { merge: true }) as { services: Record<string, Service>; secrets: Record<string, { file: string }> };
  const services = compose.services;
  const inProfile = (p: string) => Object.entries(services).filter(([, s]) => s.profiles?.includes(p)).map(([name]) => name);

  it('gives every service a healthcheck, and latchkey the image’s own', () => {
    for (const [name, s] of Object.entries(services)) expect(s.healthcheck?.test, name).toBeDefined();
    const dockerfile = dockerHealthcheck();
    expect(services.latchkey!.healthcheck!.test).toEqual(['CMD', ...dockerfile]);
    expect(services['latchkey-sentinel']!.healthcheck!.test).toEqual(['CMD', ...dockerfile]);
  });

  it('has a sentinel profile: a master, a replica of it, three sentinels with a quorum of two, and latchkey on them', () => {
    expect(inProfile('sentinel').sort()).toEqual(['latchkey-sentinel', 'redis-master', 'redis-replica', 'sentinel-1', 'sentinel-2', 'sentinel-3']);
    expect(String(services['redis-replica']!.command)).toMatch(/--replicaof redis-master 6379/);
    for (const name of ['sentinel-1', 'sentinel-2', 'sentinel-3']) {
      expect(String(services[name]!.command)).toMatch(/sentinel monitor latchkey redis-master 6379 2/);
      expect(String(services[name]!.command)).toMatch(/--sentinel/);
    }
    for (const name of ['redis-master', 'redis-replica']) expect(String(services[name]!.command)).toMatch(/--maxmemory-policy noeviction/);
    const lk = services['latchkey-sentinel']!;
    expect(lk.environment!.REDIS_SENTINELS!.split(',')).toHaveLength(3);
    expect(Object.keys(lk.depends_on!)).toEqual(expect.arrayContaining(['sentinel-1', 'sentinel-2', 'sentinel-3', 'redis-replica']));
  });

  it('keeps the Redis password in a secret file, read through REDIS_PASSWORD_FILE, never in the environment or argv', () => {
    const lk = services['latchkey-sentinel']!;
    expect(lk.secrets).toContain('redis_password');
    expect(lk.environment!.REDIS_PASSWORD_FILE).toBe('/run/secrets/redis_password');
    expect(compose.secrets.redis_password!.file).toBeDefined();
    for (const [name, s] of Object.entries(services)) {
      expect(s.environment?.REDIS_PASSWORD, name).toBeUndefined();
      expect(String(s.command ?? ''), name).not.toMatch(/--requirepass/);
    }
  });

  it('publishes only the API port; metrics and admin stay on the compose network', () => {
    const published = Object.values(services).flatMap((s) => s.ports ?? []);
    expect(published.map((p) => Number(p.split(':').pop()))).toEqual(published.map(() => 3000));
    for (const s of Object.values(services).filter((s) => s.build)) expect(s.expose).toContain('9464');
  });

  it('passes latchkey settings its configuration accepts', () => {
    for (const name of ['latchkey', 'latchkey-sentinel']) {
      const env = Object.fromEntries(
        Object.entries(services[name]!.environment!).map(([k, v]) => [k, v.replace(/\$\{[A-Z_]+:-([^}]*)\}/g, '$1')]),
      );
      const config = loadConfig(env, { readFile: () => 'from-the-secret\n' });
      expect(config.env).toBe('production');
      if (name === 'latchkey-sentinel') expect(config.redis).toMatchObject({ sentinel: { master: 'latchkey', password: 'from-the-secret' }, replicasToAck: 1 });
    }
  });
});

/** The Dockerfile's HEALTHCHECK command, as exec form. */
function dockerHealthcheck(): string[] {
  const dockerfile = read('Dockerfile').replace(/\\\n\s*/g, ' ');
  const line = dockerfile.split('\n').find((l) => l.startsWith('HEALTHCHECK '));
  expect(line).toBeDefined();
  return JSON.parse(line!.slice(line!.indexOf('CMD ') + 4)) as string[];
}

describe('against a running latchkey', () => {
  let t: TestApp;
  let base: string;
  let port: number;
  let metrics: Server;
  let metricsUrl: string;

  beforeAll(async () => {
    t = await buildTestApp('redis', {}, { clock: Date.now });
    await t.app.listen({ host: '127.0.0.1', port: 0 });
    port = (t.app.server.address() as AddressInfo).port;
    base = `http://127.0.0.1:${port}`;
    t.app.latchkey.metrics.collectProcessMetrics();
    metrics = await listenMetrics(t.app.latchkey.metrics, '127.0.0.1', 0);
    metricsUrl = `http://127.0.0.1:${(metrics.address() as AddressInfo).port}/metrics`;
  });
  afterAll(async () => {
    metrics?.close();
    await t.close();
  });

  const run = (cmd: string[], env: Record<string, string>) =>
    new Promise<number | null>((resolve) => {
      const child = spawn(cmd[0]!, cmd.slice(1), { env: { ...process.env, ...env }, stdio: 'ignore' });
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      child.once('exit', (code) => {
        clearTimeout(timer);
        resolve(code);
      });
    });

  it('the Dockerfile HEALTHCHECK passes against a live server and fails without one', async () => {
    const cmd = dockerHealthcheck();
    expect(cmd[0]).toBe('node');
    expect(await run([process.execPath, ...cmd.slice(1)], { PORT: String(port), LATCHKEY_BASE_PATH: '' })).toBe(0);
    expect(await run([process.execPath, ...cmd.slice(1)], { PORT: '1', LATCHKEY_BASE_PATH: '' })).toBe(1);
  });

  it('promtool check metrics passes on a scrape after a workload', async () => {
    const json = { 'content-type': 'application/json' };
    const formType = { 'content-type': 'application/x-www-form-urlencoded' };
    const post = (path: string, body: unknown, headers: Record<string, string> = json) =>
      fetch(`${base}${path}`, { method: 'POST', headers, body: headers === json ? JSON.stringify(body) : String(body) });
    const email = uniqueEmail('promtool');
    await post('/register', { email, password: PASSWORD });
    await post('/login', { email, password: `${PASSWORD}x` });
    const login = (await (await post('/login', { email, password: PASSWORD })).json()) as { access_token: string; refresh_token: string };
    const refreshed = (await (await post('/refresh', { refresh_token: login.refresh_token })).json()) as { refresh_token: string };
    await post('/refresh', { refresh_token: login.refresh_token });
    await post('/token', new URLSearchParams({ grant_type: 'refresh_token', refresh_token: refreshed.refresh_token }), formType);
    await post('/token', new URLSearchParams({ grant_type: 'password' }), formType);
    await fetch(`${base}/verify/orders`, { method: 'PUT', headers: { authorization: `Bearer ${login.access_token}` } });
    await fetch(`${base}/verify`);
    await fetch(`${base}/userinfo`, { headers: { authorization: `Bearer ${login.access_token}` } });
    await post('/revoke', new URLSearchParams({ token: login.access_token }), formType);
    await fetch(`${base}/.well-known/openid-configuration`);
    await fetch(`${base}/no-such-thing`);

    const scrape = await (await fetch(metricsUrl)).text();
    expect(scrape).toMatch(/latchkey_/);
    const result = await new Promise<{ code: number | null; out: string }>((resolve, reject) => {
      const child = spawn('promtool', ['check', 'metrics'], { stdio: ['pipe', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (out += d.toString()));
      child.once('error', reject);
      child.once('exit', (code) => resolve({ code, out }));
      child.stdin.end(scrape);
    });
    expect(result.out).toBe('');
    expect(result.code).toBe(0);
  });
});
