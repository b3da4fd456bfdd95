import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Channel, RotateRequest, Store } from '../../src/store/store.js';
import {
  hashSecret,
  newMacKey,
  newSecret,
  newSessionId,
  newSuccessorNonce,
  successorSecret,
} from '../../src/tokens/refresh-token.js';
import { newUserId } from '../../src/accounts/accounts.js';
import { sessionTag } from '../../src/store/session-tag.js';
import { createTestStore, type StoreKind, type TestStore } from '../helpers/app.js';

const MIN = 60_000;
const DAY = 24 * 60 * MIN;
const policy = { refreshTtlMs: 7 * DAY, absoluteTtlMs: 30 * DAY, graceMs: 10_000, maxSessions: 5 };

/** A client of the store that holds one refresh token, as the token service would. */
interface Held {
  userId: string;
  sessionId: string;
  secret: string;
  tag: string;
  channel: Channel;
}

/** The storage contract, run against every implementation. */
export function storeContract(kind: StoreKind, open: () => Promise<TestStore> = () => createTestStore(kind, 'contract'), label: string = kind): void {
  describe(`${label} store contract`, () => {
    let t: TestStore;
    let store: Store;
    const T0 = Date.now();

    beforeAll(async () => {
      t = await open();
      store = t.store;
    });
    afterAll(async () => t.dispose());

    async function newUser(overrides: { roles?: string[] } = {}) {
      const id = newUserId();
      const email = `${id}@example.com`;
      expect(
        await store.createUser({ id, email, passwordHash: 'h', roles: overrides.roles ?? [], disabled: false, createdAt: T0, revokedAfter: 0 }),
      ).toBe('created');
      return id;
    }

    async function login(
      userId: string,
      now = T0,
      channel: Channel = 'body',
      extra: Partial<typeof policy> = {},
      client?: string | null,
    ): Promise<Held> {
      const sessionId = newSessionId();
      const secret = newSecret();
      const macKey = newMacKey();
      const p = { ...policy, ...extra };
      const r = await store.createSession({
        userId,
        sessionId,
        secretHash: hashSecret(secret),
        macKey,
        channel,
        userAgent: 'test-agent',
        ip: '127.0.0.1',
        now,
        refreshTtlMs: p.refreshTtlMs,
        absoluteTtlMs: p.absoluteTtlMs,
        maxSessions: p.maxSessions,
        ...(client !== undefined && { client }),
      });
      if (r.status !== 'created') throw new Error('session not created');
      expect(r.tag).toBe(sessionTag(macKey, hashSecret(secret)));
      return { userId, sessionId, secret, tag: r.tag, channel };
    }

    function rotateRequest(h: Held, now: number, extra: Partial<RotateRequest> = {}): RotateRequest & { candidate: string } {
      const nonce = newSuccessorNonce();
      const candidate = successorSecret(h.secret, nonce);
      return {
        userId: h.userId,
        sessionId: h.sessionId,
        secretHash: hashSecret(h.secret),
        tag: h.tag,
        channel: h.channel,
        successorHash: hashSecret(candidate),
        successorNonce: nonce,
        now,
        refreshTtlMs: policy.refreshTtlMs,
        graceMs: policy.graceMs,
        userAgent: 'ua',
        ip: '10.0.0.1',
        candidate,
        ...extra,
      };
    }

    /** Rotates as the token service does and returns the token the client would now hold. */
    async function refresh(h: Held, now: number, extra: Partial<RotateRequest> = {}) {
      const req = rotateRequest(h, now, extra);
      const r = await store.rotate(req);
      if (r.status === 'rotated') return { r, next: { ...h, secret: req.candidate, tag: r.tag } };
      if (r.status === 'grace') {
        return { r, next: { ...h, secret: successorSecret(h.secret, r.successorNonce), tag: r.tag } };
      }
      return { r, next: null };
    }

    it('creates users and refuses a second account for the same e-mail', async () => {
      const id = await newUser();
      const user = await store.findUserByEmail(`${id}@example.com`);
      expect(user).toMatchObject({ id, email: `${id}@example.com`, disabled: false, roles: [] });
      expect(
        await store.createUser({ id: newUserId(), email: `${id}@example.com`, passwordHash: 'x', roles: [], disabled: false, createdAt: T0, revokedAfter: 0 }),
      ).toBe('conflict');
      expect((await store.findUserByEmail(`${id}@example.com`))?.id).toBe(id);
      expect(await store.findUserByEmail('nobody@example.com')).toBeNull();
      await store.setPasswordHash(id, 'h2');
      await store.setRoles(id, ['admin']);
      expect(await store.getUser(id)).toMatchObject({ passwordHash: 'h2', roles: ['admin'] });
    });

    it('rotation spends the presented token and makes the successor current', async () => {
      const h0 = await login(await newUser({ roles: ['reader'] }));
      const a = await refresh(h0, T0 + MIN);
      expect(a.r).toMatchObject({ status: 'rotated', roles: ['reader'], expiresAt: T0 + MIN + policy.refreshTtlMs });
      const b = await refresh(a.next!, T0 + 2 * MIN);
      expect(b.r.status).toBe('rotated');
    });

    it('re-presenting the just-spent token within the grace window returns the same successor', async () => {
      const h0 = await login(await newUser());
      const first = await refresh(h0, T0 + MIN);
      const again = await refresh(h0, T0 + MIN + 5_000);
      expect(again.r.status).toBe('grace');
      expect(again.next).toEqual(first.next);
      // The successor is still current and rotates normally.
      expect((await refresh(first.next!, T0 + 2 * MIN)).r.status).toBe('rotated');
    });

    it('concurrent rotations with one token make exactly one rotation and one successor', async () => {
      const h0 = await login(await newUser());
      const results = await Promise.all(Array.from({ length: 50 }, () => refresh(h0, T0 + MIN)));
      expect(results.filter((x) => x.r.status === 'rotated')).toHaveLength(1);
      expect(results.filter((x) => x.r.status === 'grace')).toHaveLength(49);
      expect(new Set(results.map((x) => x.next?.secret)).size).toBe(1);
    });

    it('a spent token presented after its successor was used revokes the session, however soon', async () => {
      const h0 = await login(await newUser());
      const a = await refresh(h0, T0 + MIN);
      const b = await refresh(a.next!, T0 + MIN + 1);
      expect((await refresh(h0, T0 + MIN + 2)).r.status).toBe('reused');
      expect((await refresh(b.next!, T0 + MIN + 3)).r.status).toBe('invalid');
      expect(await store.listSessions(h0.userId, T0 + 2 * MIN)).toEqual([]);
    });

    it('a retry after a lost reply gets the same successor however late, while nobody has presented that successor', async () => {
      const h0 = await login(await newUser());
      const lost = await refresh(h0, T0 + MIN);
      // Hours later, and again: the successor was never presented, so this is the client that lost the reply.
      for (const later of [T0 + MIN + policy.graceMs, T0 + 3 * 60 * MIN, T0 + 5 * 60 * MIN]) {
        const retry = await refresh(h0, later);
        expect(retry.r).toMatchObject({ status: 'grace', late: true });
        expect(retry.next).toEqual(lost.next);
      }
      const b = await refresh(lost.next!, T0 + 6 * 60 * MIN);
      expect(b.r.status).toBe('rotated');
      // Once the successor has been used, the spent token is theft.
      expect((await refresh(h0, T0 + 6 * 60 * MIN + 1)).r.status).toBe('reused');
      expect((await refresh(b.next!, T0 + 6 * 60 * MIN + 2)).r.status).toBe('invalid');
    });

    it('a successor handed out late may have two holders: whichever comes second after the window is reuse', async () => {
      const h0 = await login(await newUser());
      // A thief rotates a stolen token; hours later the victim presents it and is handed the same successor.
      const thief = await refresh(h0, T0 + MIN);
      const victim = await refresh(h0, T0 + 60 * MIN);
      expect(victim.r).toMatchObject({ status: 'grace', late: true });
      expect(victim.next).toEqual(thief.next);
      // The thief moves on; within the window a second presentation is still ordinary grace (two tabs) ...
      const moved = await refresh(thief.next!, T0 + 120 * MIN);
      expect(moved.r.status).toBe('rotated');
      expect((await refresh(victim.next!, T0 + 120 * MIN + 1000)).r).toMatchObject({ status: 'grace', late: false });
      // ... but after it, the token handed out late gets no late hand-out of its own: the family is revoked.
      expect((await refresh(victim.next!, T0 + 120 * MIN + policy.graceMs)).r.status).toBe('reused');
      expect((await refresh(moved.next!, T0 + 121 * MIN)).r.status).toBe('invalid');
      expect(await store.listSessions(h0.userId, T0 + 121 * MIN)).toEqual([]);
    });

    it('a client that lost a reply, then rotated normally, keeps the late retry for its next lost reply', async () => {
      const h0 = await login(await newUser());
      const a = await refresh(h0, T0 + MIN);
      expect((await refresh(h0, T0 + 60 * MIN)).r).toMatchObject({ status: 'grace', late: true });
      const b = await refresh(a.next!, T0 + 61 * MIN);
      const c = await refresh(b.next!, T0 + 62 * MIN);
      expect(c.r.status).toBe('rotated');
      // b.next was handed out by an ordinary rotation: a late retry with it works again.
      expect((await refresh(b.next!, T0 + 120 * MIN)).r).toMatchObject({ status: 'grace', late: true });
    });

    it('an older token than the immediately previous one is reuse even within the window', async () => {
      const h0 = await login(await newUser());
      const a = await refresh(h0, T0 + MIN);
      const b = await refresh(a.next!, T0 + MIN + 1000);
      expect((await refresh(h0, T0 + MIN + 2000)).r.status).toBe('reused');
      expect((await refresh(b.next!, T0 + MIN + 3000)).r.status).toBe('invalid');
    });

    it('the just-spent token gets no grace once its successor has been rotated', async () => {
      const h0 = await login(await newUser());
      const a = await refresh(h0, T0 + MIN);
      await refresh(a.next!, T0 + MIN + 1000);
      // a.next is now the previous token, h0 is older: presenting h0 is reuse.
      expect((await refresh(h0, T0 + MIN + 2000)).r.status).toBe('reused');
    });

    it('with a grace window of zero a second presentation is reuse, a late retry too', async () => {
      const h0 = await login(await newUser());
      expect((await refresh(h0, T0 + MIN, { graceMs: 0 })).r.status).toBe('rotated');
      expect((await refresh(h0, T0 + MIN, { graceMs: 0 })).r.status).toBe('reused');
      const h1 = await login(h0.userId);
      expect((await refresh(h1, T0 + MIN, { graceMs: 0 })).r.status).toBe('rotated');
      expect((await refresh(h1, T0 + 2 * MIN, { graceMs: 0 })).r.status).toBe('reused');
    });

    it('a token forged from a known session id is refused without revoking the session', async () => {
      const h0 = await login(await newUser());
      const forged = { ...h0, secret: newSecret() };
      expect((await refresh(forged, T0 + MIN)).r.status).toBe('invalid');
      expect((await refresh({ ...h0, tag: '0'.repeat(32) }, T0 + MIN)).r.status).toBe('invalid');
      expect(await store.revokeSessionByToken({ ...forged, secretHash: hashSecret(forged.secret) })).toBe(false);
      expect((await refresh(h0, T0 + MIN)).r.status).toBe('rotated');
    });

    it('channel binding: a token is refused on the other channel and stays usable on its own', async () => {
      const h0 = await login(await newUser(), T0, 'cookie');
      expect((await refresh({ ...h0, channel: 'body' }, T0 + MIN)).r.status).toBe('invalid');
      expect((await refresh(h0, T0 + MIN)).r.status).toBe('rotated');
    });

    it('a session remembers its client; a rotation for another client is refused and changes nothing', async () => {
      const user = await newUser();
      const mobile = await login(user, T0, 'body', {}, 'ios-app');
      expect((await refresh(mobile, T0 + 1, { client: null })).r.status).toBe('invalid');
      expect((await refresh(mobile, T0 + 2, { client: 'other' })).r.status).toBe('invalid');
      const named = await refresh(mobile, T0 + 3, { client: 'ios-app' });
      expect(named.r).toMatchObject({ status: 'rotated', client: 'ios-app' });
      // Without a client to check, any session rotates, and the grace answer keeps the client too.
      expect((await refresh(mobile, T0 + 4)).r).toMatchObject({ status: 'grace', client: 'ios-app' });
      const plain = await login(user);
      expect((await refresh(plain, T0 + 5, { client: 'ios-app' })).r.status).toBe('invalid');
      expect((await refresh(plain, T0 + 6, { client: null })).r).toMatchObject({ status: 'rotated', client: null });
    });

    it('an idle refresh token expires, and rotation never extends the absolute lifetime', async () => {
      const h0 = await login(await newUser());
      expect((await refresh(h0, T0 + policy.refreshTtlMs)).r.status).toBe('invalid');

      const userId = await newUser();
      let held = await login(userId, T0, 'body', { absoluteTtlMs: 10 * DAY });
      // Days 4 and 8 rotate (each within the 7-day idle lifetime); day 12 is past the absolute 10 days.
      const statuses: string[] = [];
      let now = T0;
      for (let i = 0; i < 3; i++) {
        now += 4 * DAY;
        const x = await refresh(held, now);
        statuses.push(x.r.status);
        if (x.r.status === 'rotated') {
          expect(x.r.absoluteExpiresAt).toBe(T0 + 10 * DAY);
          expect(x.r.expiresAt).toBeLessThanOrEqual(T0 + 10 * DAY);
          held = x.next!;
        }
      }
      expect(statuses).toEqual(['rotated', 'rotated', 'invalid']);
    });

    it('a disabled user can neither refresh nor start a session, and their tokens stop being active', async () => {
      const userId = await newUser();
      const h0 = await login(userId);
      const claims = { userId, sessionId: h0.sessionId, jti: 'j1', iat: T0 / 1000 };
      expect(await store.isAccessTokenActive(claims, T0 + 1)).toBe(true);
      await store.setDisabled(userId, true, T0 + 2);
      expect(await store.isAccessTokenActive(claims, T0 + 3)).toBe(false);
      expect((await refresh(h0, T0 + 4)).r.status).toBe('invalid');
      await expect(login(userId, T0 + 5)).rejects.toThrow('session not created');
      expect((await store.getUser(userId))?.revokedAfter).toBe(T0 + 2);
    });

    it('revokeSessionByToken revokes the session of a genuine current or spent token', async () => {
      const userId = await newUser();
      const h0 = await login(userId);
      const a = await refresh(h0, T0 + MIN);
      expect(await store.revokeSessionByToken({ ...h0, secretHash: hashSecret(h0.secret) })).toBe(true);
      expect((await refresh(a.next!, T0 + 2 * MIN)).r.status).toBe('invalid');
      expect(await store.revokeSessionByToken({ ...h0, secretHash: hashSecret(h0.secret) })).toBe(false);
    });

    it('revokeAllSessions revokes every session, marks the user, and leaves later sessions alone', async () => {
      const userId = await newUser();
      const sessions = [await login(userId), await login(userId), await login(userId)];
      expect((await store.revokeAllSessions(userId, T0 + 1000)).sort()).toEqual(sessions.map((s) => s.sessionId).sort());
      for (const s of sessions) {
        expect(await store.isAccessTokenActive({ userId, sessionId: s.sessionId, jti: 'x', iat: T0 / 1000 }, T0 + 1001)).toBe(false);
        expect((await refresh(s, T0 + 1001)).r.status).toBe('invalid');
      }
      expect((await store.getUser(userId))?.revokedAfter).toBe(T0 + 1000);
      const later = await login(userId, T0 + 1000);
      expect(await store.isAccessTokenActive({ userId, sessionId: later.sessionId, jti: 'x', iat: T0 / 1000 }, T0 + 1001)).toBe(true);
      // The mark never moves backwards.
      await store.revokeAllSessions(userId, T0 + 500);
      expect((await store.getUser(userId))?.revokedAfter).toBe(T0 + 1000);
    });

    it('the incident switch: tokens issued before its mark stop being active, later ones stay; a role mark reaches that role only', async () => {
      // Marks cannot be taken back: this test gets a store of its own, so the others are not affected.
      const shared = store;
      const own = await open();
      store = own.store;
      try {
      const userId = await newUser();
      const admin = await newUser({ roles: ['admin'] });
      const h = await login(userId);
      const ha = await login(admin);
      const active = (held: Held, iat: number, roles?: string[]) =>
        store.isAccessTokenActive({ userId: held.userId, sessionId: held.sessionId, jti: 'x', iat, roles }, T0 + 1);
      expect(await store.globalRevocation()).toEqual({ all: 0, roles: {} });
      const mark = (Math.floor(T0 / 1000) + 2) * 1000;
      await store.revokeEveryone(mark, 'admin', DAY);
      expect(await active(ha, mark / 1000 - 1, ['admin'])).toBe(false);
      expect(await active(ha, mark / 1000, ['admin'])).toBe(true);
      expect(await active(h, mark / 1000 - 1)).toBe(true);
      await store.revokeEveryone(mark, null, DAY);
      expect(await active(h, mark / 1000 - 1)).toBe(false);
      expect(await active(h, mark / 1000)).toBe(true);
      // Marks never move backwards.
      await store.revokeEveryone(mark - 5000, null, DAY);
      await store.revokeEveryone(mark - 5000, 'admin', DAY);
      expect(await store.globalRevocation()).toEqual({ all: mark, roles: { admin: mark } });
      // Rotation says when the session was created, so the issuer can refuse sessions from before the mark.
      expect((await refresh(h, T0 + 1000)).r).toMatchObject({ status: 'rotated', createdAt: T0 });
      } finally {
        store = shared;
        await own.dispose();
      }
    });

    it('revokeSession only reaches the named user’s sessions', async () => {
      const alice = await newUser();
      const bob = await newUser();
      const a = await login(alice);
      expect(await store.revokeSession(bob, a.sessionId)).toBe(false);
      expect(await store.isAccessTokenActive({ userId: alice, sessionId: a.sessionId, jti: 'x', iat: T0 / 1000 }, T0 + 1)).toBe(true);
      expect(await store.revokeSession(alice, a.sessionId)).toBe(true);
      expect(await store.isAccessTokenActive({ userId: alice, sessionId: a.sessionId, jti: 'x', iat: T0 / 1000 }, T0 + 1)).toBe(false);
    });

    it('keeps a user agent of up to 128 bytes intact, multi-byte characters included', async () => {
      const userId = await newUser();
      const ua = `Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0 Safari/537.36 ünïcødé`;
      expect(Buffer.byteLength(ua)).toBeGreaterThan(100);
      const h = await login(userId);
      await refresh(h, T0 + 1000, { userAgent: ua });
      expect((await store.listSessions(userId, T0 + 2000))[0]?.userAgent).toBe(ua);
    });

    it('lists live sessions, most recently used first', async () => {
      const userId = await newUser();
      const s1 = await login(userId, T0);
      const s2 = await login(userId, T0 + 1000);
      await refresh(s1, T0 + 2000);
      const list = await store.listSessions(userId, T0 + 3000);
      expect(list.map((s) => s.id)).toEqual([s1.sessionId, s2.sessionId]);
      expect(list[0]).toMatchObject({ userId, createdAt: T0, lastUsedAt: T0 + 2000, ip: '10.0.0.1', userAgent: 'ua' });
      expect(list[1]).toMatchObject({ ip: '127.0.0.1', userAgent: 'test-agent', expiresAt: T0 + 1000 + policy.refreshTtlMs });
      expect(await store.listSessions(userId, T0 + 2000 + policy.refreshTtlMs)).toEqual([]);
    });

    it('bounds live sessions per user by revoking the ones closest to expiry', async () => {
      const userId = await newUser();
      const held: Held[] = [];
      for (let i = 0; i < policy.maxSessions + 2; i++) held.push(await login(userId, T0 + i));
      const live = await store.listSessions(userId, T0 + 100);
      expect(live).toHaveLength(policy.maxSessions);
      expect(live.map((s) => s.id)).not.toContain(held[0]!.sessionId);
      expect(live.map((s) => s.id)).not.toContain(held[1]!.sessionId);
      expect((await refresh(held[0]!, T0 + 200)).r.status).toBe('invalid');
    });

    it('records the last login and lists users in creation order, page by page', async () => {
      const a = await newUser();
      expect((await store.getUser(a))?.lastLoginAt ?? 0).toBe(0);
      await login(a, T0 + 5);
      expect((await store.getUser(a))?.lastLoginAt).toBe(T0 + 5);
      const seen: string[] = [];
      let cursor: string | undefined;
      for (let pages = 0; pages < 1000; pages++) {
        const page = await store.listUsers(cursor, 3);
        expect(page.users.length).toBeLessThanOrEqual(3);
        seen.push(...page.users.map((u) => u.id));
        if (!page.next) break;
        cursor = page.next;
      }
      expect(seen).toContain(a);
      expect(new Set(seen).size).toBe(seen.length);
    });

    it('sessions say which channel their refresh tokens travel on', async () => {
      const userId = await newUser();
      const cookie = await login(userId, T0, 'cookie');
      const body = await login(userId, T0 + 1, 'body');
      const list = await store.listSessions(userId, T0 + 2);
      expect(list.find((s) => s.id === cookie.sessionId)?.channel).toBe('cookie');
      expect(list.find((s) => s.id === body.sessionId)?.channel).toBe('body');
    });

    it('a reset token works once, only before it expires, and dies after too many wrong guesses', async () => {
      const userId = await newUser();
      const good = hashSecret('reset-1');
      await store.setResetToken(userId, good, T0 + 30 * MIN, T0);
      expect(await store.consumeResetToken(userId, hashSecret('wrong'), T0 + 1, 3)).toBe(false);
      expect(await store.consumeResetToken(userId, good, T0 + 2, 3)).toBe(true);
      expect(await store.consumeResetToken(userId, good, T0 + 3, 3)).toBe(false);

      // A newer token replaces the older one.
      await store.setResetToken(userId, hashSecret('reset-2'), T0 + 30 * MIN, T0);
      await store.setResetToken(userId, hashSecret('reset-3'), T0 + 30 * MIN, T0);
      expect(await store.consumeResetToken(userId, hashSecret('reset-2'), T0 + 1, 3)).toBe(false);
      expect(await store.consumeResetToken(userId, hashSecret('reset-3'), T0 + 1, 3)).toBe(true);

      // Expired.
      await store.setResetToken(userId, hashSecret('reset-4'), T0 + 30 * MIN, T0);
      expect(await store.consumeResetToken(userId, hashSecret('reset-4'), T0 + 30 * MIN, 3)).toBe(false);

      // Three wrong guesses kill it.
      await store.setResetToken(userId, hashSecret('reset-5'), T0 + 30 * MIN, T0);
      for (let i = 0; i < 3; i++) expect(await store.consumeResetToken(userId, hashSecret(`guess-${i}`), T0 + 1, 3)).toBe(false);
      expect(await store.consumeResetToken(userId, hashSecret('reset-5'), T0 + 1, 3)).toBe(false);

      await store.setResetToken(userId, hashSecret('reset-6'), T0 + 30 * MIN, T0);
      await store.deleteResetToken(userId);
      expect(await store.consumeResetToken(userId, hashSecret('reset-6'), T0 + 1, 3)).toBe(false);
    });

    it('keeps admin keys by id, hashed, until deleted', async () => {
      const id = newSessionId();
      const key = { id, name: `ops-${id}`, secretHash: 'aGFzaA', createdAt: T0, expiresAt: null, createdBy: 'cli' };
      await store.putAdminKey(key);
      await store.putAdminKey({ ...key, name: 'overwrite attempt' });
      expect(await store.getAdminKey(id)).toEqual(key);
      expect((await store.listAdminKeys()).find((k) => k.id === id)).toEqual(key);
      expect(await store.deleteAdminKey(id)).toBe(true);
      expect(await store.deleteAdminKey(id)).toBe(false);
      expect(await store.getAdminKey(id)).toBeNull();
    });

    it('the audit trail pages newest first with filters, follows oldest first, and stays bounded', async () => {
      // A trail of its own time range: far in the future of every other test's entries.
      const base = T0 + 400 * DAY;
      const retention = { maxAgeMs: 30 * DAY, maxEntries: 1000 };
      const u1 = newUserId();
      const u2 = newUserId();
      const ids: string[] = [];
      for (let i = 0; i < 12; i++) {
        const entry = {
          time: base + i,
          type: i % 3 === 0 ? 'login_failed' : 'login_succeeded',
          userId: i % 2 === 0 ? u1 : u2,
          actor: 'system',
          ip: '10.0.0.1',
          userAgent: null,
          requestId: `req-${i}`,
          details: { n: i },
        };
        ids.push(await store.appendAudit(entry, retention));
      }
      const first = await store.readAudit({ userId: u1, limit: 4, scanLimit: 1000 });
      expect(first.entries.map((e) => e.details.n)).toEqual([10, 8, 6, 4]);
      expect(first.next).not.toBeNull();
      const second = await store.readAudit({ userId: u1, limit: 4, before: first.next!, scanLimit: 1000 });
      expect(second.entries.map((e) => e.details.n)).toEqual([2, 0]);
      const failed = await store.readAudit({ userId: u2, type: 'login_failed', limit: 10, scanLimit: 1000 });
      expect(failed.entries.map((e) => e.details.n)).toEqual([9, 3]);
      expect(failed.entries[0]).toMatchObject({ userId: u2, actor: 'system', ip: '10.0.0.1', requestId: 'req-9', time: base + 9 });

      // A small scan budget returns what it found and where to go on.
      const partial = await store.readAudit({ userId: u1, limit: 10, scanLimit: 3 });
      expect(partial.entries.map((e) => e.details.n)).toEqual([10]);
      expect(partial.next).toBe(ids[9]);

      expect((await store.readAuditSince(ids[9], 10)).map((e) => e.details.n)).toEqual([10, 11]);

      // Bounded by count and by age.
      await store.appendAudit({ ...first.entries[0]!, time: base + 20, details: { n: 20 } }, { maxAgeMs: 30 * DAY, maxEntries: 5 });
      const all = await store.readAudit({ limit: 100, scanLimit: 1000 });
      expect(all.entries.map((e) => e.details.n)).toEqual([20, 11, 10, 9, 8]);
      expect(all.next).toBeNull();
      await store.appendAudit({ ...first.entries[0]!, time: base + 31 * DAY, details: { n: 21 } }, retention);
      expect((await store.readAudit({ limit: 100, scanLimit: 1000 })).entries.map((e) => e.details.n)).toEqual([21]);
    });

    it('the audit key is random and the same on every call', async () => {
      const a = await store.auditSecret();
      expect(a.length).toBeGreaterThanOrEqual(32);
      expect((await store.auditSecret()).equals(a)).toBe(true);
    });

    it('a deny-listed jti is inactive until its expiry, other tokens of the session are not', async () => {
      const userId = await newUser();
      const s = await login(userId);
      await store.denyAccessToken(userId, 'jti-1', T0 + 900_000, T0);
      expect(await store.isAccessTokenActive({ userId, sessionId: s.sessionId, jti: 'jti-1', iat: T0 / 1000 }, T0 + 1)).toBe(false);
      expect(await store.isAccessTokenActive({ userId, sessionId: s.sessionId, jti: 'jti-2', iat: T0 / 1000 }, T0 + 1)).toBe(true);
      expect(await store.isAccessTokenActive({ userId, sessionId: 'nope', jti: 'jti-2', iat: T0 / 1000 }, T0 + 1)).toBe(false);
    });
  });
}
