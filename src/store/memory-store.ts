import { applyGlobal, revokedGlobally, type GlobalRevocation } from '@latchkey/verifier/protocol';
import { sessionTag } from './session-tag.js';
import type {
  CreateSessionResult,
  NewSession,
  PresentedToken,
  RotateRequest,
  RotateResult,
  SessionRecord,
  Store,
  UserRecord,
} from './store.js';

interface MemSession extends SessionRecord {
  macKey: Buffer;
  current: Buffer;
  channel: string;
  client: string | null;
  /** The token spent last, while the grace window may still need it. */
  spent: { hash: Buffer; at: number; nonce: string } | null;
}

/**
 * The embedded store: the same contract as Redis, kept in this process. For a first run and for tests
 * only — it forgets everything on restart and cannot be shared by two instances, so start-up warns loudly
 * and NODE_ENV=production refuses it. JavaScript runs one call at a time, and no method awaits between
 * its read and its write, so every method is atomic as the contract demands.
 *
 * Expired entries are dropped when touched and by a sweep driven by the latest `now` callers passed in.
 */
export class MemoryStore implements Store {
  readonly kind = 'memory';
  private readonly users = new Map<string, UserRecord>();
  private readonly emails = new Map<string, string>();
  private readonly sessions = new Map<string, Map<string, MemSession>>();
  private readonly denied = new Map<string, number>();
  private global: GlobalRevocation = { all: 0, roles: {} };
  private latestNow = 0;
  private readonly sweeper: NodeJS.Timeout;

  constructor(sweepEveryMs = 60_000) {
    this.sweeper = setInterval(() => this.sweep(), sweepEveryMs);
    this.sweeper.unref();
  }

  async createUser(user: UserRecord): Promise<'created' | 'conflict'> {
    if (this.emails.has(user.email)) return 'conflict';
    this.emails.set(user.email, user.id);
    this.users.set(user.id, structuredClone(user));
    return 'created';
  }

  async findUserByEmail(email: string): Promise<UserRecord | null> {
    const id = this.emails.get(email);
    return id ? this.getUser(id) : null;
  }

  async getUser(userId: string): Promise<UserRecord | null> {
    const u = this.users.get(userId);
    return u ? structuredClone(u) : null;
  }

  async setPasswordHash(userId: string, passwordHash: string): Promise<void> {
    const u = this.users.get(userId);
    if (u) u.passwordHash = passwordHash;
  }

  async setRoles(userId: string, roles: string[]): Promise<void> {
    const u = this.users.get(userId);
    if (u) u.roles = [...roles];
  }

  async setDisabled(userId: string, disabled: boolean, now: number): Promise<string[]> {
    const u = this.users.get(userId);
    if (!u) return [];
    u.disabled = disabled;
    return disabled ? this.revokeAllNow(u, now) : [];
  }

  async createSession(s: NewSession): Promise<CreateSessionResult> {
    this.seen(s.now);
    const user = this.users.get(s.userId);
    if (!user || user.disabled) return { status: 'user_unavailable' };
    const live = this.liveSessions(s.userId, s.now);
    const byExpiry = [...live.values()].sort((a, b) => a.expiresAt - b.expiresAt);
    const evicted = byExpiry.slice(0, Math.max(0, byExpiry.length - s.maxSessions + 1)).map((old) => old.id);
    for (const id of evicted) live.delete(id);
    const absoluteExpiresAt = s.now + s.absoluteTtlMs;
    const expiresAt = Math.min(s.now + s.refreshTtlMs, absoluteExpiresAt);
    live.set(s.sessionId, {
      id: s.sessionId,
      userId: s.userId,
      createdAt: s.now,
      lastUsedAt: s.now,
      expiresAt,
      absoluteExpiresAt,
      userAgent: s.userAgent,
      ip: s.ip,
      macKey: Buffer.from(s.macKey),
      current: Buffer.from(s.secretHash),
      channel: s.channel,
      client: s.client ?? null,
      spent: null,
    });
    this.sessions.set(s.userId, live);
    return {
      status: 'created',
      evicted,
      tag: sessionTag(s.macKey, s.secretHash),
      expiresAt,
      absoluteExpiresAt,
      roles: [...user.roles],
      client: s.client ?? null,
      createdAt: s.now,
    };
  }

  async rotate(q: RotateRequest): Promise<RotateResult> {
    this.seen(q.now);
    const live = this.liveSessions(q.userId, q.now);
    const s = live.get(q.sessionId);
    if (!s || !genuine(s, q)) return { status: 'invalid' };
    const user = this.users.get(q.userId);
    if (!user || user.disabled) {
      live.delete(s.id);
      return { status: 'invalid' };
    }
    if (s.channel !== q.channel) return { status: 'invalid' };
    if (q.client !== undefined && s.client !== q.client) return { status: 'invalid' };
    if (q.now >= s.expiresAt) {
      live.delete(s.id);
      return { status: 'invalid' };
    }
    const roles = [...user.roles];
    if (q.secretHash.equals(s.current)) {
      s.spent = q.graceMs > 0 ? { hash: s.current, at: q.now, nonce: q.successorNonce } : null;
      s.current = Buffer.from(q.successorHash);
      s.lastUsedAt = q.now;
      s.expiresAt = Math.min(q.now + q.refreshTtlMs, s.absoluteExpiresAt);
      s.ip = q.ip;
      s.userAgent = q.userAgent;
      return { status: 'rotated', ...this.state(s, roles) };
    }
    if (s.spent?.hash.equals(q.secretHash) && q.now - s.spent.at < q.graceMs) {
      s.lastUsedAt = q.now;
      s.ip = q.ip;
      s.userAgent = q.userAgent;
      return { status: 'grace', successorNonce: s.spent.nonce, ...this.state(s, roles) };
    }
    live.delete(s.id);
    return { status: 'reused' };
  }

  async revokeSessionByToken(t: PresentedToken): Promise<boolean> {
    const live = this.sessions.get(t.userId);
    const s = live?.get(t.sessionId);
    if (!live || !s || !genuine(s, t)) return false;
    return live.delete(s.id);
  }

  async revokeSession(userId: string, sessionId: string): Promise<boolean> {
    return this.sessions.get(userId)?.delete(sessionId) ?? false;
  }

  async revokeAllSessions(userId: string, now: number): Promise<string[]> {
    const u = this.users.get(userId);
    return u ? this.revokeAllNow(u, now) : [];
  }

  async listSessions(userId: string, now: number): Promise<SessionRecord[]> {
    this.seen(now);
    return [...this.liveSessions(userId, now).values()]
      .map((s) => ({
        id: s.id,
        userId: s.userId,
        createdAt: s.createdAt,
        lastUsedAt: s.lastUsedAt,
        expiresAt: s.expiresAt,
        absoluteExpiresAt: s.absoluteExpiresAt,
        userAgent: s.userAgent,
        ip: s.ip,
      }))
      .sort((a, b) => b.lastUsedAt - a.lastUsedAt);
  }

  async denyAccessToken(userId: string, jti: string, expiresAt: number, now: number): Promise<void> {
    this.seen(now);
    if (expiresAt > now) this.denied.set(`${userId}:${jti}`, expiresAt);
  }

  async isAccessTokenActive(
    c: { userId: string; sessionId: string; jti: string; iat: number; roles?: readonly string[] },
    now: number,
  ): Promise<boolean> {
    this.seen(now);
    if (revokedGlobally(this.global, c)) return false;
    const deniedUntil = this.denied.get(`${c.userId}:${c.jti}`);
    if (deniedUntil !== undefined && deniedUntil > now) return false;
    const s = this.sessions.get(c.userId)?.get(c.sessionId);
    if (!s || s.expiresAt <= now || s.absoluteExpiresAt <= now) return false;
    const u = this.users.get(c.userId);
    return !!u && !u.disabled;
  }

  async revokeEveryone(revokedAfter: number, role: string | null): Promise<void> {
    this.global = applyGlobal(this.global, { ra: revokedAfter, role });
  }

  async globalRevocation(): Promise<GlobalRevocation> {
    return structuredClone(this.global);
  }

  /** No verifier can read this store: revocations reach latchkey's own endpoints, which read it directly. */
  async publish(): Promise<void> {}

  /** One process, no replicas: nothing to wait for. */
  async confirmRevocations(): Promise<void> {}

  async ping(): Promise<void> {}

  async close(): Promise<void> {
    clearInterval(this.sweeper);
  }

  private revokeAllNow(u: UserRecord, now: number): string[] {
    u.revokedAfter = Math.max(u.revokedAfter, now);
    const ids = [...this.liveSessions(u.id, now).keys()];
    this.sessions.delete(u.id);
    return ids;
  }

  private state(s: MemSession, roles: string[]) {
    return { tag: sessionTag(s.macKey, s.current), expiresAt: s.expiresAt, absoluteExpiresAt: s.absoluteExpiresAt, roles, client: s.client, createdAt: s.createdAt };
  }

  /** The user's sessions with expired ones dropped (what Redis TTLs do on their own). */
  private liveSessions(userId: string, now: number): Map<string, MemSession> {
    const live = this.sessions.get(userId) ?? new Map<string, MemSession>();
    for (const [id, s] of live) if (s.expiresAt <= now) live.delete(id);
    if (live.size === 0) this.sessions.delete(userId);
    return live;
  }

  private seen(now: number): void {
    if (now > this.latestNow) this.latestNow = now;
  }

  private sweep(): void {
    const now = this.latestNow;
    for (const [key, until] of this.denied) if (until <= now) this.denied.delete(key);
    for (const userId of [...this.sessions.keys()]) this.liveSessions(userId, now);
  }
}

function genuine(s: MemSession, t: PresentedToken): boolean {
  return t.secretHash.length === 32 && sessionTag(s.macKey, t.secretHash) === t.tag;
}
