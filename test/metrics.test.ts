import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import type { Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listenMetrics } from '../src/metrics.js';
import { loadConfig } from '../src/config.js';
import { buildTestApp, type TestApp } from './helpers/app.js';
import { bearer, loginNative, PASSWORD, post, refreshNative, register } from './helpers/client.js';

/** Prometheus metrics, scraped over a real socket from their own port. */
describe('metrics', () => {
  let t: TestApp;
  let server: Server;
  let url: string;

  beforeAll(async () => {
    t = await buildTestApp('redis');
    t.app.latchkey.metrics.collectProcessMetrics();
    server = await listenMetrics(t.app.latchkey.metrics, '127.0.0.1', 0);
    url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  });
  afterAll(async () => {
    server.close();
    await t.close();
  });

  const scrape = async () => {
    const res = await fetch(`${url}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    return res.text();
  };
  const value = (text: string, series: string) => {
    const line = text.split('\n').find((l) => l.startsWith(`${series} `));
    return line === undefined ? undefined : Number(line.slice(series.length + 1));
  };

  it('count refresh outcomes, reuse events and requests by route, with no user data in any label', async () => {
    const before = await scrape();
    const user = await register(t.app);
    const login = await loginNative(t.app, user.email);
    const rotated = await refreshNative(t.app, login.refresh);
    expect(rotated.statusCode).toBe(200);
    expect((await refreshNative(t.app, login.refresh)).statusCode).toBe(200); // grace
    t.clock.advanceSeconds(60);
    expect((await refreshNative(t.app, login.refresh)).statusCode).toBe(401); // reuse: session revoked
    expect((await post(t.app, '/login', { email: user.email, password: `${PASSWORD}x` })).statusCode).toBe(401);

    const after = await scrape();
    const delta = (series: string) => (value(after, series) ?? 0) - (value(before, series) ?? 0);
    expect(delta('latchkey_refresh_total{result="rotated"}')).toBe(1);
    expect(delta('latchkey_refresh_total{result="grace"}')).toBe(1);
    expect(delta('latchkey_refresh_total{result="reused"}')).toBe(1);
    expect(delta('latchkey_auth_events_total{type="refresh_token_reused"}')).toBe(1);
    expect(delta('latchkey_http_request_duration_seconds_count{method="POST",route="/refresh",status_code="200"}')).toBe(2);
    expect(delta('latchkey_http_request_duration_seconds_count{method="POST",route="/refresh",status_code="401"}')).toBe(1);
    expect(delta('latchkey_http_request_duration_seconds_count{method="POST",route="/login",status_code="401"}')).toBe(1);
    expect(value(after, 'latchkey_signing_key_active')).toBe(1);
    expect(value(after, 'latchkey_jwks_keys')).toBeGreaterThanOrEqual(1);
    expect(value(after, 'latchkey_password_hashes{state="running"}')).toBe(0);
    expect(after).toMatch(/^latchkey_process_cpu_seconds_total /m);
    expect(after).toMatch(/^latchkey_nodejs_eventloop_lag_seconds /m);
    for (const secret of [user.id, user.email, login.sessionId, login.refresh, login.access]) expect(after).not.toContain(secret);
  });

  it('group unknown paths under one series instead of one per path', async () => {
    await t.app.inject('/no/such/path/a1');
    await t.app.inject('/no/such/path/b2');
    const text = await scrape();
    expect(value(text, 'latchkey_http_request_duration_seconds_count{method="GET",route="unmatched",status_code="404"}')).toBeGreaterThanOrEqual(2);
    expect(text).not.toContain('/no/such/path');
  });

  it('are not served by the API port, and only GET /metrics on their own', async () => {
    expect((await t.app.inject('/metrics')).statusCode).toBe(404);
    expect((await fetch(`${url}/`)).status).toBe(404);
    expect((await fetch(`${url}/metrics`, { method: 'POST' })).status).toBe(404);
  });

  it('listen on their own port by default, and not at all with port 0', () => {
    expect(loadConfig({}).metrics).toEqual({ host: '127.0.0.1', port: 9464 });
    expect(loadConfig({ HOST: '0.0.0.0', LATCHKEY_METRICS_HOST: '10.0.0.5' }).metrics).toEqual({ host: '10.0.0.5', port: 9464 });
    expect(loadConfig({ LATCHKEY_METRICS_PORT: '0' }).metrics).toBeNull();
    expect(() => loadConfig({ PORT: '3000', LATCHKEY_METRICS_PORT: '3000' })).toThrow(/LATCHKEY_METRICS_PORT: must differ from PORT/);
  });
});

const RULES = 'ops/prometheus/latchkey-rules.yml';
const DASHBOARD = 'ops/grafana/latchkey-dashboard.json';

const promtool = (args: string[], input?: string) => {
  const r = spawnSync('promtool', args, { input, encoding: 'utf8' });
  return { code: r.status, output: `${r.stdout}${r.stderr}` };
};

/** The latchkey_* metric families an expression reads (histogram series map to their family). */
const familiesIn = (expr: string) =>
  [...expr.matchAll(/\blatchkey_[a-z0-9_]+/g)].map(([name]) => name.replace(/_(bucket|count|sum)$/, ''));

/** The shipped alert rules and dashboard, checked by promtool and against a real scrape. */
describe('alert rules and dashboard', () => {
  let t: TestApp;
  let scrape: string;

  beforeAll(async () => {
    t = await buildTestApp('redis');
    t.app.latchkey.metrics.collectProcessMetrics();
    // A workload that touches every metric the rules and the dashboard read.
    const user = await register(t.app);
    const a = await loginNative(t.app, user.email);
    const b = await loginNative(t.app, user.email);
    await refreshNative(t.app, a.refresh);
    await t.app.inject({ url: '/verify', headers: bearer(b.access) });
    await t.app.inject({ url: '/sessions', headers: bearer(b.access) });
    await post(t.app, '/logout', { refresh_token: b.refresh });
    await t.app.inject({ url: '/verify', headers: bearer(b.access) });
    await post(t.app, '/login', { email: user.email, password: `${PASSWORD}x` });
    scrape = await t.app.latchkey.metrics.registry.metrics();
  });
  afterAll(async () => t.close());

  it('a real scrape after a workload passes promtool check metrics', () => {
    const r = promtool(['check', 'metrics'], scrape);
    // prom-client's own process metrics name three gauges *_total; everything latchkey defines is clean.
    const ownedByPromClient = /^latchkey_nodejs_active_(handles|requests|resources)_total non-counter metrics should not have "_total" suffix$/;
    expect(r.output.split('\n').filter((line) => line && !ownedByPromClient.test(line))).toEqual([]);
    expect(r.code === 0 || r.output.trim().split('\n').every((line) => ownedByPromClient.test(line))).toBe(true);
    expect(scrape).toMatch(/^latchkey_token_decisions_total\{where="verify",decision="revoked"\} 1$/m);
  });

  it('the rules file passes promtool check rules and covers what on-call needs', async () => {
    const r = promtool(['check', 'rules', RULES]);
    expect(r.output).toContain('SUCCESS');
    expect(r.code).toBe(0);
    const doc = parseYaml(await readFile(RULES, 'utf8')) as { groups: Array<{ rules: Array<{ alert: string; expr: string }> }> };
    const exprs = doc.groups.flatMap((g) => g.rules.map((rule) => rule.expr)).join('\n');
    for (const needed of [
      'latchkey_refresh_total{result="reused"}',
      'latchkey_unavailable_total',
      'latchkey_signing_key_active',
      'latchkey_revocation_check_duration_seconds_bucket',
      'latchkey_redis_up',
      'latchkey_nodejs_eventloop_lag_p99_seconds',
      'latchkey_token_fail_open_accepts_total',
    ]) {
      expect(exprs).toContain(needed);
    }
  });

  it('every metric the rules and the dashboard read exists in a real scrape', async () => {
    const exported = new Set([...scrape.matchAll(/^# TYPE (\S+) /gm)].map(([, name]) => name));
    const doc = parseYaml(await readFile(RULES, 'utf8')) as { groups: Array<{ rules: Array<{ expr: string }> }> };
    const dashboard = JSON.parse(await readFile(DASHBOARD, 'utf8')) as { panels: Array<{ targets?: Array<{ expr: string }> }> };
    const dashboardExprs = dashboard.panels.flatMap((p) => (p.targets ?? []).map((target) => target.expr));
    expect(dashboardExprs.length).toBeGreaterThan(15);
    const read = [...doc.groups.flatMap((g) => g.rules.map((rule) => rule.expr)), ...dashboardExprs].flatMap(familiesIn);
    expect(read.filter((name) => !exported.has(name))).toEqual([]);
  });

  it('every dashboard query is valid PromQL (promtool parses them as recording rules)', async () => {
    const dashboard = JSON.parse(await readFile(DASHBOARD, 'utf8')) as { panels: Array<{ targets?: Array<{ expr: string }> }> };
    const rules = dashboard.panels
      .flatMap((p) => (p.targets ?? []).map((target) => target.expr))
      .map((expr, i) => ({ record: `dashboard:query_${i}`, expr: expr.replaceAll('$job', '.*') }));
    const file = join(await mkdtemp(join(tmpdir(), 'lk-dash-')), 'dashboard-rules.yml');
    await writeFile(file, JSON.stringify({ groups: [{ name: 'dashboard', rules }] }));
    const r = promtool(['check', 'rules', file]);
    expect(r.output).toContain('SUCCESS');
    expect(r.code).toBe(0);
  });
});
