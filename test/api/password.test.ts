import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NO_CONTEXT } from '../../src/audit/context.js';
import { buildTestAdmin, buildTestApp, storeKinds, type TestApp } from '../helpers/app.js';
import { bearer, loginBrowser, loginNative, PASSWORD, post, refreshCookie, refreshNative, register, uniqueEmail } from '../helpers/client.js';
import { ORIGIN } from '../helpers/app.js';
import { resetTokenOf, startSmtpServer, waitFor } from '../helpers/smtp.js';

const NEW_PASSWORD = 'a brand new passphrase';
const verify = (t: TestApp, access: string) => t.app.inject({ url: '/verify', headers: bearer(access) }).then((r) => r.statusCode);

describe.each(storeKinds)('POST /password (%s store)', (kind) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await buildTestApp(kind);
  });
  afterAll(async () => t.close());

  it('re-verifies, rehashes, revokes every other session and earlier token, and answers fresh tokens in the body', async () => {
    const u = await register(t.app);
    const mine = await loginNative(t.app, u.email);
    const other = await loginNative(t.app, u.email);

    const wrong = await post(t.app, '/password', { current_password: 'not my password', new_password: NEW_PASSWORD }, bearer(mine.access));
    expect(wrong.statusCode).toBe(401);
    expect(wrong.json()).toMatchObject({ error: 'invalid_credentials' });
    const weak = await post(t.app, '/password', { current_password: PASSWORD, new_password: 'iloveyou' }, bearer(mine.access));
    expect(weak.statusCode).toBe(400);
    expect(weak.json()).toMatchObject({ error_description: expect.stringMatching(/^new_password: /) });
    expect(await verify(t, other.access)).toBe(200);

    const res = await post(t.app, '/password', { current_password: PASSWORD, new_password: NEW_PASSWORD }, bearer(mine.access));
    expect(res.statusCode).toBe(200);
    expect(res.headers['cache-control']).toBe('no-store');
    const fresh = res.json() as { access_token: string; refresh_token: string };
    expect(fresh.refresh_token).toMatch(/^lk_rt_/);
    expect(await verify(t, other.access)).toBe(401);
    expect(await verify(t, mine.access)).toBe(401);
    expect((await refreshNative(t.app, other.refresh)).statusCode).toBe(401);
    expect((await refreshNative(t.app, mine.refresh)).statusCode).toBe(401);
    expect(await verify(t, fresh.access_token)).toBe(200);
    expect((await refreshNative(t.app, fresh.refresh_token)).statusCode).toBe(200);

    expect((await post(t.app, '/login', { email: u.email, password: PASSWORD })).statusCode).toBe(401);
    expect((await post(t.app, '/login', { email: u.email, password: NEW_PASSWORD })).statusCode).toBe(200);
    await t.app.latchkey.audit.flush();
    const types = (await t.store.readAudit({ userId: u.id, limit: 20, scanLimit: 1000 })).entries.map((e) => e.type);
    expect(types).toContain('password_changed');
    expect(types).toContain('login_failed');
  });

  it('a browser session gets its fresh refresh token as a cookie, never in the body', async () => {
    const u = await register(t.app);
    const browser = await loginBrowser(t.app, u.email, t.config.cookie.name);
    const res = await post(t.app, '/password', { current_password: PASSWORD, new_password: NEW_PASSWORD }, { ...bearer(browser.access), origin: ORIGIN });
    expect(res.statusCode).toBe(200);
    expect(res.json()).not.toHaveProperty('refresh_token');
    expect(refreshCookie(res, t.config.cookie.name)?.value).toMatch(/^lk_rt_/);
    const foreign = await loginBrowser(t.app, u.email, t.config.cookie.name, NEW_PASSWORD);
    const refused = await post(t.app, '/password', { current_password: NEW_PASSWORD, new_password: PASSWORD + '!' }, { ...bearer(foreign.access), origin: 'https://evil.example' });
    expect(refused.statusCode).toBe(403);
    expect(await verify(t, foreign.access)).toBe(200);
  });

  it('needs a valid access token', async () => {
    expect((await post(t.app, '/password', { current_password: PASSWORD, new_password: NEW_PASSWORD })).statusCode).toBe(401);
  });
});

describe.each(storeKinds)('forgotten password, by e-mail over SMTP (%s store)', (kind) => {
  let t: TestApp;
  let smtp: Awaited<ReturnType<typeof startSmtpServer>>;
  beforeAll(async () => {
    smtp = await startSmtpServer();
    t = await buildTestApp(kind, { LATCHKEY_SMTP_URL: smtp.url, LATCHKEY_RESET_URL: 'https://app.example.com/reset#token={token}' });
  });
  afterAll(async () => {
    await t.close();
    await smtp.close();
  });

  const forgot = (email: string) => post(t.app, '/password/forgot', { email });
  const reset = (token: string, password = NEW_PASSWORD) => post(t.app, '/password/reset', { token, new_password: password });
  async function mailFor(email: string, after: number) {
    return waitFor(`a mail to ${email}`, () => smtp.mails.slice(after).find((m) => m.to.includes(email)));
  }

  it('mails a single-use link; the reset sets the password and revokes every session', async () => {
    const u = await register(t.app);
    const s = await loginNative(t.app, u.email);
    const before = smtp.mails.length;
    const res = await forgot(u.email.toUpperCase());
    expect(res.statusCode).toBe(202);
    const mail = await mailFor(u.email, before);
    expect(mail.text).toContain('https://app.example.com/reset#token=lk_pr_');
    const token = resetTokenOf(mail);

    expect((await reset(token, 'password')).statusCode).toBe(400); // the policy applies; the token survives
    expect((await reset(token)).statusCode).toBe(204);
    expect(await verify(t, s.access)).toBe(401);
    expect((await refreshNative(t.app, s.refresh)).statusCode).toBe(401);
    expect((await post(t.app, '/login', { email: u.email, password: NEW_PASSWORD })).statusCode).toBe(200);

    const again = await reset(token, 'yet another passphrase');
    expect(again.statusCode).toBe(401);
    expect(again.json()).toMatchObject({ error: 'invalid_grant' });
    expect((await post(t.app, '/login', { email: u.email, password: NEW_PASSWORD })).statusCode).toBe(200);
    // Nothing secret at rest: the stored audit trail and the mail-less log never hold the token.
    await t.app.latchkey.audit.flush();
    const trail = JSON.stringify((await t.store.readAudit({ userId: u.id, limit: 50, scanLimit: 1000 })).entries);
    expect(trail).toContain('password_reset_completed');
    expect(trail).not.toContain(token.slice(-43));
  });

  it('an unknown address gets the same answer and no mail', async () => {
    const u = await register(t.app);
    const known = await forgot(u.email);
    const ghost = uniqueEmail('ghost');
    const unknown = await forgot(ghost);
    expect(unknown.statusCode).toBe(known.statusCode);
    expect(unknown.body).toBe(known.body);
    expect(unknown.headers['content-type']).toBe(known.headers['content-type']);
    await mailFor(u.email, 0);
    await t.app.latchkey.resets.flush();
    expect(smtp.mails.some((m) => m.to.includes(ghost))).toBe(false);
  });

  it('a token dies when it expires, when a newer one is sent, after a few wrong guesses, and when the account is disabled', async () => {
    const u = await register(t.app);
    let before = smtp.mails.length;
    await forgot(u.email);
    const expiring = resetTokenOf(await mailFor(u.email, before));
    t.clock.advanceSeconds(t.config.passwordReset.tokenTtl);
    expect((await reset(expiring)).statusCode).toBe(401);

    before = smtp.mails.length;
    await forgot(u.email);
    const older = resetTokenOf(await mailFor(u.email, before));
    before = smtp.mails.length;
    await forgot(u.email);
    const newer = resetTokenOf(await mailFor(u.email, before));
    expect((await reset(older)).statusCode).toBe(401);

    const guess = `${newer.slice(0, -43)}${'A'.repeat(43)}`;
    for (let i = 0; i < 5; i++) expect((await reset(guess)).statusCode).toBe(401);
    expect((await reset(newer)).statusCode).toBe(401);

    before = smtp.mails.length;
    await forgot(u.email);
    const forDisabled = resetTokenOf(await mailFor(u.email, before));
    await t.app.latchkey.accounts.disable(u.id, NO_CONTEXT);
    expect((await reset(forDisabled)).statusCode).toBe(401);
    await t.app.latchkey.accounts.enable(u.id, NO_CONTEXT);
    expect((await reset(forDisabled)).statusCode).toBe(401);
    expect((await post(t.app, '/login', { email: u.email, password: PASSWORD })).statusCode).toBe(200);
    expect((await reset('lk_pr_nonsense')).statusCode).toBe(401);
  });

  it('an operator starts a reset through the admin API: the mail goes out', async () => {
    const admin = await buildTestAdmin(t);
    try {
      const a = await register(t.app);
      await t.store.setRoles(a.id, ['admin']);
      const token = (await loginNative(t.app, a.email)).access;
      const u = await register(t.app);
      const before = smtp.mails.length;
      const res = await admin.inject({ method: 'POST', url: `/admin/users/${u.id}/password-reset`, headers: bearer(token) });
      expect(res.statusCode).toBe(202);
      expect(smtp.mails.slice(before).some((m) => m.to.includes(u.email))).toBe(true);
    } finally {
      await admin.close();
    }
  });
});

describe('forgotten password without SMTP', () => {
  it('production refuses with 503; development answers 202 and sends nothing', async () => {
    // The store is the test's own; production only insists that one is configured.
    const prod = await buildTestApp('memory', { NODE_ENV: 'production', REDIS_URL: 'redis://127.0.0.1:1' });
    const dev = await buildTestApp('memory', { NODE_ENV: 'development' });
    try {
      const res = await post(prod.app, '/password/forgot', { email: 'someone@example.com' });
      expect(res.statusCode).toBe(503);
      expect(res.headers['retry-after']).toBeDefined();
      expect((await post(dev.app, '/password/forgot', { email: 'someone@example.com' })).statusCode).toBe(202);
    } finally {
      await prod.close();
      await dev.close();
    }
  });
});
