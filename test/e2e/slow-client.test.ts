import { connect, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, type TestApp } from '../helpers/app.js';

/** Slow clients on a real socket: a request must arrive whole within the configured timeouts. */
describe('slow clients', () => {
  let t: TestApp;
  let port: number;

  beforeAll(async () => {
    t = await buildTestApp('memory', { LATCHKEY_REQUEST_TIMEOUT_MS: '2000', LATCHKEY_HEADERS_TIMEOUT_MS: '1000' }, { clock: Date.now });
    await t.app.listen({ host: '127.0.0.1', port: 0 });
    port = (t.app.server.address() as AddressInfo).port;
  });
  afterAll(async () => t.close());

  /** Writes `first`, then one byte of `drip` a second, until the server closes; resolves with the time open. */
  function dripUntilClosed(first: string, drip: string, giveUpMs: number): Promise<{ ms: number; reply: string }> {
    return new Promise((resolve) => {
      const started = Date.now();
      const socket: Socket = connect(port, '127.0.0.1');
      let reply = '';
      let i = 0;
      const timer = setInterval(() => {
        if (!socket.destroyed && socket.writable) socket.write(drip[i++ % drip.length]!);
      }, 1000);
      const done = () => {
        clearInterval(timer);
        clearTimeout(giveUp);
        resolve({ ms: Date.now() - started, reply });
      };
      const giveUp = setTimeout(() => {
        socket.destroy();
      }, giveUpMs);
      socket.on('data', (d: Buffer) => (reply += d.toString()));
      socket.on('error', () => undefined);
      socket.on('close', done);
      socket.write(first);
    });
  }

  it('a body announced as 1000 bytes and sent a byte a second is cut off at the request timeout', async () => {
    const head = `POST /login HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"email":"`;
    const { ms, reply } = await dripUntilClosed(head, 'a', 15_000);
    // 2 s timeout, checked every second; well short of the 15 s the client would keep going.
    expect(ms).toBeLessThan(6000);
    expect(ms).toBeGreaterThanOrEqual(1900);
    if (reply) expect(reply).toMatch(/^HTTP\/1\.1 408/);
  });

  it('headers sent a byte a second are cut off at the headers timeout', async () => {
    const { ms } = await dripUntilClosed('GET /healthz HTTP/1.1\r\nHost: localhost\r\n', 'X-Slow: aaaaaaaaaaaaaaaa', 15_000);
    expect(ms).toBeLessThan(5000);
  });

  it('the server applies the configured limits', () => {
    expect(t.app.server.requestTimeout).toBe(2000);
    expect(t.app.server.headersTimeout).toBe(1000);
    expect(t.app.server.keepAliveTimeout).toBe(72_000);
    expect(t.app.server.maxConnections).toBe(10_000);
  });
});
