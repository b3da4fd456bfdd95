import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InMemorySpanExporter } from '@opentelemetry/sdk-trace-node';
import { loadConfig } from '../src/config.js';
import { startTracing, type Tracing } from '../src/tracing.js';
import { buildTestApp, type TestApp } from './helpers/app.js';
import { bearer, loginNative, PASSWORD, post, refreshNative, register } from './helpers/client.js';

/** OpenTelemetry spans, exported to memory, on a real Redis. */
describe('traces', () => {
  const exporter = new InMemorySpanExporter();
  let tracing: Tracing;
  let t: TestApp;

  beforeAll(async () => {
    tracing = await startTracing({ serviceName: 'latchkey-test', exporter });
    t = await buildTestApp('redis', {}, { tracing });
  });
  afterAll(async () => {
    await t.close();
    await tracing.shutdown();
  });

  it('span the route, each store call with its Redis commands, the signature and the password hash — and carry no secret', async () => {
    const user = await register(t.app);
    const login = await loginNative(t.app, user.email);
    const rotated = (await refreshNative(t.app, login.refresh)).json() as { access_token: string; refresh_token: string };
    await t.app.inject({ url: '/verify?token=query-secret', headers: bearer(rotated.access_token) });
    await post(t.app, '/login', { email: user.email, password: `${PASSWORD}-wrong` });
    const spans = exporter.getFinishedSpans();
    const named = (name: string) => spans.filter((s) => s.name === name);

    const routes = spans.map((s) => s.attributes['http.route']).filter(Boolean);
    expect(routes).toEqual(expect.arrayContaining(['/register', '/login', '/refresh', '/verify']));
    const rotate = named('store lkRotate');
    expect(rotate).toHaveLength(1);
    expect(rotate[0]!.attributes['db.system.name']).toBe('redis');
    const trace = rotate[0]!.spanContext().traceId;
    // Redis commands of the refresh, named by command only. Auto-pipelining sends the commands of one
    // tick together, so a command span may hang under a sibling store call, but stays in its request's trace.
    const commands = spans.filter((s) => s.spanContext().traceId === trace && s.attributes['db.query.text'] !== undefined);
    expect(commands.map((s) => s.name)).toEqual(expect.arrayContaining(['evalsha', 'hgetall']));
    for (const c of commands) expect(c.attributes['db.query.text']).toBe(c.name);
    const request = spans.find((s) => s.spanContext().traceId === trace && s.name === 'request');
    expect(request?.attributes['http.route']).toBe('/refresh');
    expect(named('access token sign').length).toBe(2);
    expect(named('password hash').length).toBeGreaterThanOrEqual(1);
    expect(named('password verify').length).toBe(2);
    const verify = spans.find((s) => s.name === 'request' && s.attributes['http.route'] === '/verify');
    expect(verify?.attributes['url.path']).toBe('/verify');

    const everything = JSON.stringify(spans.map((s) => ({ name: s.name, attributes: s.attributes, events: s.events, status: s.status })));
    for (const secret of [user.email, PASSWORD, login.refresh, login.access, rotated.refresh_token, rotated.access_token, 'query-secret']) {
      expect(everything).not.toContain(secret);
    }
  });
});

describe('tracing configuration', () => {
  it('is off unless an OTLP endpoint is set, and OTEL_SDK_DISABLED turns it off', () => {
    expect(loadConfig({}).tracing).toBeNull();
    expect(loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' }).tracing).toEqual({ serviceName: 'latchkey' });
    expect(loadConfig({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://collector:4318/v1/traces', OTEL_SERVICE_NAME: 'auth' }).tracing).toEqual({
      serviceName: 'auth',
    });
    expect(loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318', OTEL_SDK_DISABLED: 'true' }).tracing).toBeNull();
  });
});
