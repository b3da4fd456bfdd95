import { createRemoteJWKSet, jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, type TestApp, listenLocal } from '../helpers/app.js';
import { PASSWORD, uniqueEmail } from '../helpers/client.js';

/** Over a real socket against real Redis: the race the Lua script exists to close. */
describe('over a real socket (redis store)', () => {
  let t: TestApp;
  let base: string;

  beforeAll(async () => {
    // Real time here: concurrency, not the clock, is under test.
    t = await buildTestApp('redis', {}, { clock: Date.now });
    base = await listenLocal(t.app);
  });
  afterAll(async () => t.close());

  async function call(path: string, body: unknown, headers: Record<string, string> = {}) {
    const res = await fetch(`${base}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: JSON.stringify(body),
    });
    return { status: res.status, body: (await res.json()) as Record<string, string> };
  }

  it('50 concurrent refreshes with one token get one successor and never fork the session, round after round', async () => {
    const email = uniqueEmail('race');
    expect((await call('/register', { email, password: PASSWORD })).status).toBe(201);
    const login = await call('/login', { email, password: PASSWORD });
    expect(login.status).toBe(200);
    let token = login.body.refresh_token!;
    const rounds = 20;
    for (let round = 0; round < rounds; round++) {
      const answers = await Promise.all(Array.from({ length: 50 }, () => call('/refresh', { refresh_token: token })));
      expect(answers.map((a) => a.status)).toEqual(Array(50).fill(200));
      const successors = new Set(answers.map((a) => a.body.refresh_token));
      expect(successors.size).toBe(1);
      const [next] = successors;
      expect(next).not.toBe(token);
      token = next!;
    }
    // Still one session, and its current token is the last successor.
    const user = await t.store.findUserByEmail(email);
    const sessions = await t.store.listSessions(user!.id, Date.now());
    expect(sessions.map((s) => s.id)).toEqual([login.body.session_id]);
    expect((await call('/refresh', { refresh_token: token })).status).toBe(200);
  });

  it('a stock resource-server verifier accepts the tokens through the remote JWKS', async () => {
    const email = uniqueEmail('rs');
    await call('/register', { email, password: PASSWORD });
    const login = await call('/login', { email, password: PASSWORD });
    const jwks = createRemoteJWKSet(new URL(`${base}/.well-known/jwks.json`));
    const { payload, protectedHeader } = await jwtVerify(login.body.access_token!, jwks, {
      issuer: t.config.issuer,
      audience: t.config.audience,
      algorithms: ['RS256'],
    });
    expect(protectedHeader.typ).toBe('at+jwt');
    expect(payload.sid).toBe(login.body.session_id);
  });
});
