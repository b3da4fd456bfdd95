import { Writable } from 'node:stream';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { loggerOptions } from '../src/logger.js';
import { lazyChildLogger } from '../src/request-logger.js';
import { buildTestApp } from './helpers/app.js';
import { bearer, loginNative, PASSWORD, post, refreshNative, register } from './helpers/client.js';

function capture() {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(...chunk.toString().split('\n').filter(Boolean));
      done();
    },
  });
  return { lines, logger: pino(loggerOptions('debug'), stream) };
}

describe('logs', () => {
  it('redact credentials wherever they appear', () => {
    const { lines, logger } = capture();
    logger.info({
      req: { headers: { authorization: 'Bearer secret-access', cookie: '__Host-lk_rt=secret-cookie' } },
      res: { headers: { 'set-cookie': '__Host-lk_rt=secret-set-cookie' } },
      body: { password: 'secret-password', refresh_token: 'secret-refresh' },
      password: 'secret-top-password',
    });
    expect(lines).toHaveLength(1);
    expect(lines[0]).not.toMatch(/secret-/);
    expect(lines[0]).toContain('[redacted]');
  });

  it('redact credential headers at the top level too, every password and token field, and drop query strings and fragments from URLs', () => {
    const { lines, logger } = capture();
    logger.info({
      req: {
        method: 'GET',
        url: '/sessions?access_token=secret-req-query',
        headers: { authorization: 'Bearer secret-req-auth', cookie: 'lk=secret-req-cookie' },
      },
      res: { headers: { 'set-cookie': 'lk=secret-res-set-cookie' } },
      headers: {
        authorization: 'Bearer secret-top-auth',
        cookie: 'lk=secret-top-cookie',
        'set-cookie': 'lk=secret-top-set-cookie',
        'user-agent': 'an-agent',
      },
      body: { password: 'secret-body-password', refresh_token: 'secret-body-refresh' },
      attempt: { password: 'secret-nested-password', refresh_token: 'secret-nested-refresh', access_token: 'secret-nested-access' },
      password: 'secret-top-password',
      refresh_token: 'secret-top-refresh',
      access_token: 'secret-top-access',
      url: '/callback#access_token=secret-top-fragment',
    });
    expect(lines).toHaveLength(1);
    expect(lines[0]).not.toMatch(/secret-/);
    const logged = JSON.parse(lines[0]!) as Record<string, Record<string, unknown>>;
    expect(logged.req).toMatchObject({ method: 'GET', url: '/sessions' });
    expect(logged.url).toBe('/callback');
    expect(logged.headers).toEqual({
      authorization: '[redacted]',
      cookie: '[redacted]',
      'set-cookie': '[redacted]',
      'user-agent': 'an-agent',
    });
  });

  it('record a reuse as a security event without any token, password or e-mail in any line', async () => {
    const { lines, logger } = capture();
    const t = await buildTestApp('memory', {}, { logger });
    try {
      const user = await register(t.app);
      const login = await loginNative(t.app, user.email);
      const next = (await refreshNative(t.app, login.refresh)).json() as { refresh_token: string };
      t.clock.advanceSeconds(60);
      // The successor has been used: the spent token is reuse.
      await refreshNative(t.app, next.refresh_token);
      expect((await refreshNative(t.app, login.refresh)).statusCode).toBe(401);
      await post(t.app, '/logout', { refresh_token: login.refresh }, bearer(login.access));
      await post(t.app, '/login', { email: user.email, password: 'wrong password' });

      const events = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(events).toContainEqual(
        expect.objectContaining({ event: 'refresh_token_reused', userId: user.id, sessionId: login.sessionId, level: 40 }),
      );
      const all = lines.join('\n');
      expect(all).not.toContain('lk_rt_');
      expect(all).not.toContain(login.access.split('.')[2]);
      expect(all).not.toContain(PASSWORD);
      expect(all).not.toContain(user.email);
    } finally {
      await t.close();
    }
  });
});

describe('request loggers', () => {
  function at(level: string) {
    const lines: Array<Record<string, unknown>> = [];
    const stream = new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const line of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(line) as Record<string, unknown>);
        done();
      },
    });
    return { lines, logger: pino(loggerOptions(level), stream) };
  }

  it('bind the request id and redact, whether made at once (info) or only when a line is written (warn)', async () => {
    for (const level of ['info', 'warn']) {
      const { lines, logger } = at(level);
      const t = await buildTestApp('memory', {}, { logger });
      try {
        const user = await register(t.app);
        const login = await loginNative(t.app, user.email);
        await t.app.inject({ url: '/verify', headers: bearer(login.access) });
        // A warning from inside a request: a refused login.
        await post(t.app, '/login', { email: user.email, password: 'wrong password' });
      } finally {
        await t.close();
      }
      const requestLines = lines.filter((l) => l.reqId !== undefined);
      if (level === 'info') expect(requestLines.map((l) => l.msg)).toContain('incoming request');
      else expect(lines.filter((l) => l.msg === 'incoming request')).toEqual([]);
      const refused = lines.find((l) => l.event === 'login_failed');
      expect(refused, level).toMatchObject({ level: 40, reqId: expect.any(String) });
      expect(JSON.stringify(lines)).not.toContain('wrong password');
    }
  });

  it('a request that logs nothing at its level makes no pino child', () => {
    const { lines, logger } = at('warn');
    const made: unknown[] = [];
    const child = logger.child.bind(logger);
    logger.child = ((...args: Parameters<typeof logger.child>) => (made.push(args[0]), child(...args))) as typeof logger.child;
    const quiet = lazyChildLogger(logger, { reqId: 'req-1' }, {});
    quiet.info({ any: 'thing' }, 'not at this level');
    quiet.debug('nor this');
    expect(made).toEqual([]);
    expect(quiet.level).toBe('warn');
    quiet.warn({ headers: { authorization: 'Bearer secret-x' } }, 'now');
    quiet.error('and again');
    expect(made).toEqual([{ reqId: 'req-1' }]);
    expect(lines).toMatchObject([{ reqId: 'req-1', msg: 'now', level: 40 }, { reqId: 'req-1', msg: 'and again', level: 50 }]);
    expect(JSON.stringify(lines)).not.toContain('secret-x');
    // A route with a level of its own gets its child at once, at that level.
    const chatty = lazyChildLogger(logger, { reqId: 'req-2' }, { level: 'debug' });
    chatty.debug('shown');
    expect(lines.at(-1)).toMatchObject({ reqId: 'req-2', msg: 'shown', level: 20 });
  });
});

describe('start-up', () => {
  it('warns when password hashes could hold every libuv thread that signing needs', async () => {
    for (const [pool, warned] of [
      ['4', true],
      ['8', false],
    ] as const) {
      const { lines, logger } = capture();
      const t = await buildTestApp('memory', { UV_THREADPOOL_SIZE: pool, LATCHKEY_HASH_CONCURRENCY: '4' }, { logger });
      await t.close();
      expect(lines.some((l) => l.includes('UV_THREADPOOL_SIZE leaves no thread for signing')), `pool ${pool}`).toBe(warned);
    }
  });
});
