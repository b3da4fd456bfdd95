import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { assertMatchesSpec } from './support/openapi.js';

const tokens = {
  access_token: 'eyJ.x.y',
  token_type: 'Bearer',
  expires_in: 900,
  refresh_expires_in: 604800,
  session_id: 'abc',
  refresh_token: 'lk_rt_abc',
};
const ok = (body: unknown, headers: Record<string, unknown> = { 'cache-control': 'no-store' }) => ({
  statusCode: 200,
  headers,
  body: JSON.stringify(body),
});

describe('the response checker catches what it should', () => {
  it('accepts a valid token response', () => {
    expect(() => assertMatchesSpec('post', '/login', ok(tokens))).not.toThrow();
  });
  it('rejects an unknown property, a wrong type, a missing required header, an undocumented status', () => {
    expect(() => assertMatchesSpec('post', '/login', ok({ ...tokens, email: 'a@b.c' }))).toThrow(/schema/);
    expect(() => assertMatchesSpec('post', '/login', ok({ ...tokens, expires_in: '900' }))).toThrow(/schema/);
    expect(() => assertMatchesSpec('post', '/login', ok(tokens, {}))).toThrow(/Cache-Control/);
    expect(() => assertMatchesSpec('post', '/login', { statusCode: 404, headers: {}, body: '{}' })).toThrow(/not documented/);
  });
  it('rejects a body on a bodiless response and an unknown error code', () => {
    expect(() =>
      assertMatchesSpec('delete', '/sessions/{id}', { statusCode: 204, headers: {}, body: '{"x":1}' }),
    ).toThrow(/without a body/);
    expect(() =>
      assertMatchesSpec('post', '/login', { statusCode: 401, headers: {}, body: JSON.stringify({ error: 'nope', error_description: 'x' }) }),
    ).toThrow(/schema/);
  });
});

describe('openapi.yaml', () => {
  it('passes the OpenAPI linter', () => {
    const run = () =>
      execFileSync('npx', ['redocly', 'lint', 'openapi.yaml'], {
        env: { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true' },
        stdio: 'pipe',
      });
    expect(run).not.toThrow();
  });
});
