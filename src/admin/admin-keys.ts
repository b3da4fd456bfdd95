import { createHash, timingSafeEqual } from 'node:crypto';
import type { ActionContext } from '../audit/context.js';
import { ApiError } from '../errors.js';
import type { EventBus } from '../events.js';
import type { AdminKeyRecord, Store } from '../store/store.js';
import { randomToken } from '../tokens/random.js';

/**
 * Admin API keys: `lk_ak_<id>.<secret>`. The prefix lets secret scanners spot a leak; the id (128 bits,
 * not secret) finds the record; the secret is 256 random bits of which only SHA-256 is stored. Named,
 * optionally expiring, revocable; shown once, at creation.
 */
export const ADMIN_KEY_PREFIX = 'lk_ak_';
const KEY_RE = /^lk_ak_([A-Za-z0-9_-]{22})\.([A-Za-z0-9_-]{43})$/;

const hash = (secret: string) => createHash('sha256').update(secret).digest('base64url');

export interface AdminKeysDeps {
  store: Store;
  events: EventBus;
  clock: () => number;
}

export class AdminKeys {
  constructor(private readonly deps: AdminKeysDeps) {}

  /**
   * Creates a key, recorded as created by the context's actor. The returned `key` is the only copy: it is
   * never stored or shown again.
   */
  async create(name: string, expiresInSeconds: number | null, context: ActionContext): Promise<{ record: AdminKeyRecord; key: string }> {
    const now = this.deps.clock();
    const live = await this.list();
    if (live.some((k) => k.name === name)) throw new ApiError('conflict', 'An admin key with this name exists.');
    const id = randomToken(16);
    const secret = randomToken(32);
    const record: AdminKeyRecord = {
      id,
      name,
      secretHash: hash(secret),
      createdAt: now,
      expiresAt: expiresInSeconds === null ? null : now + expiresInSeconds * 1000,
      createdBy: context.actor ?? 'unknown',
    };
    await this.deps.store.putAdminKey(record);
    this.deps.events.emit({ type: 'admin_key_created', keyId: id, name }, context);
    return { record, key: `${ADMIN_KEY_PREFIX}${id}.${secret}` };
  }

  /** Live keys; expired ones are deleted on the way, which keeps the stored set bounded. */
  async list(): Promise<AdminKeyRecord[]> {
    const now = this.deps.clock();
    const all = await this.deps.store.listAdminKeys();
    const live: AdminKeyRecord[] = [];
    for (const key of all) {
      if (key.expiresAt !== null && key.expiresAt <= now) await this.deps.store.deleteAdminKey(key.id);
      else live.push(key);
    }
    return live.sort((a, b) => a.createdAt - b.createdAt);
  }

  /** Revokes a key by id or by name. False if there is none. */
  async revoke(idOrName: string, context: ActionContext): Promise<boolean> {
    const key = (await this.list()).find((k) => k.id === idOrName || k.name === idOrName);
    if (!key || !(await this.deps.store.deleteAdminKey(key.id))) return false;
    this.deps.events.emit({ type: 'admin_key_revoked', keyId: key.id, name: key.name }, context);
    return true;
  }

  /** The key's record if `presented` is a live admin key, else null. */
  async authenticate(presented: string): Promise<AdminKeyRecord | null> {
    const m = KEY_RE.exec(presented);
    if (!m) return null;
    const record = await this.deps.store.getAdminKey(m[1]!);
    if (!record) return null;
    const a = Buffer.from(record.secretHash);
    const b = Buffer.from(hash(m[2]!));
    if (a.length !== b.length || !timingSafeEqual(a, b)) return null;
    if (record.expiresAt !== null && record.expiresAt <= this.deps.clock()) return null;
    return record;
  }
}
