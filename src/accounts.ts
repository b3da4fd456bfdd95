import { ApiError } from './errors.js';
import type { PasswordHasher } from './passwords.js';
import type { Store } from './store/store.js';
import { newUserId } from './tokens/refresh-token.js';

/**
 * One account per address however it is typed: trim, Unicode NFKC (so full-width and other compatibility
 * forms fold to their plain letters), then lower-case.
 */
export function normalizeEmail(raw: string): string {
  return raw.trim().normalize('NFKC').toLowerCase();
}

export class Accounts {
  constructor(
    private readonly store: Store,
    private readonly hasher: PasswordHasher,
    private readonly clock: () => number,
  ) {}

  async register(email: string, password: string, roles: string[] = []): Promise<{ id: string; email: string }> {
    const normalized = normalizeEmail(email);
    // Cheap look-up first, so a taken address does not cost a hash; createUser still decides atomically.
    if (await this.store.findUserByEmail(normalized)) throw conflict();
    const id = newUserId();
    const passwordHash = await this.hasher.hash(password);
    const result = await this.store.createUser({
      id,
      email: normalized,
      passwordHash,
      roles,
      disabled: false,
      createdAt: this.clock(),
      revokedAfter: 0,
    });
    if (result === 'conflict') throw conflict();
    return { id, email: normalized };
  }
}

const conflict = () => new ApiError('conflict', 'An account with this e-mail already exists.');
