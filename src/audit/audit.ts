import { createHmac } from 'node:crypto';
import type { Logger } from 'pino';
import type { AuthEvent } from '../events.js';
import type { AuditEntry, AuditQuery, AuditRetention, Store, StoredAuditEntry } from '../store/store.js';
import type { ActionContext } from './context.js';

export interface AuditDeps {
  store: Store;
  log: Logger;
  clock: () => number;
  retention: AuditRetention;
  /** LATCHKEY_AUDIT_KEY; without it the key is a random one the store keeps for every instance. */
  key?: string;
}

/**
 * The audit trail (README "The audit trail"): every security event, with its actor, IP, user agent and
 * request id, appended to the store's bounded trail and mirrored in the log. It subscribes to the event
 * bus; nothing else writes to it. Events carry no password or token, and an address without an account
 * only as a keyed hash (`emailHash`), so the trail can tell repeated attempts on one address apart without
 * holding the address.
 */
export class AuditTrail {
  private secret: Buffer | null;
  private readonly pending = new Set<Promise<unknown>>();

  constructor(private readonly deps: AuditDeps) {
    this.secret = deps.key ? Buffer.from(deps.key) : null;
  }

  /** Loads the shared key of the keyed hashes. Best effort: a store that is down now is asked again later. */
  async init(): Promise<void> {
    if (this.secret) return;
    try {
      this.secret = await this.deps.store.auditSecret();
    } catch (err) {
      this.deps.log.warn({ reason: (err as Error).message }, 'audit key not loaded yet; retrying on the next event');
    }
  }

  /**
   * HMAC-SHA256 of a normalised address under the trail's key, shortened to 128 bits: equal for equal
   * addresses, useless for recovering one. `null` until the key could be loaded.
   */
  emailHash(email: string): string | undefined {
    if (!this.secret) {
      void this.init();
      return undefined;
    }
    return createHmac('sha256', this.secret).update('latchkey audit e-mail v1\0').update(email).digest('base64url').slice(0, 22);
  }

  /** The event bus subscriber. Never throws: a failed write is logged, the request goes on. */
  readonly record = (event: AuthEvent, context: ActionContext): void => {
    const entry = this.entry(event, context);
    this.deps.log.info({ audit: entry }, `audit: ${entry.type}`);
    const write = this.deps.store.appendAudit(entry, this.deps.retention).catch((err: Error) => {
      this.deps.log.error({ reason: err.message, type: entry.type }, 'audit entry not stored');
    });
    this.pending.add(write);
    void write.finally(() => this.pending.delete(write));
  };

  /** Resolves once every entry recorded so far is stored (or failed): before a CLI exits, and in tests. */
  async flush(): Promise<void> {
    while (this.pending.size > 0) await Promise.all([...this.pending]);
  }

  query(q: Omit<AuditQuery, 'scanLimit'>): Promise<{ entries: StoredAuditEntry[]; next: string | null }> {
    return this.deps.store.readAudit({ ...q, scanLimit: 10_000 });
  }

  since(after: string | undefined, limit: number): Promise<StoredAuditEntry[]> {
    return this.deps.store.readAuditSince(after, limit);
  }

  private entry(event: AuthEvent, context: ActionContext): AuditEntry {
    const { type, ...details } = event;
    const userId = 'userId' in event ? event.userId : null;
    delete (details as { userId?: unknown }).userId;
    return {
      time: this.deps.clock(),
      type,
      userId,
      actor: context.actor ?? (userId ? `user:${userId}` : 'system'),
      ip: context.ip,
      userAgent: context.userAgent,
      requestId: context.requestId,
      details,
    };
  }
}

/** Shown to API callers and in `audit tail`: snake_case, ISO time. */
export function auditView(e: StoredAuditEntry) {
  return {
    id: e.id,
    time: new Date(e.time).toISOString(),
    type: e.type,
    user_id: e.userId,
    actor: e.actor,
    ip: e.ip,
    user_agent: e.userAgent,
    request_id: e.requestId,
    details: e.details,
  };
}
