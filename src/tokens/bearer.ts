import type { Logger } from 'pino';
import { invalidToken } from '../errors.js';
import type { Store } from '../store/store.js';
import type { AccessClaims, AccessTokens } from './access-token.js';
import { REVOKED, type DecidedTokens } from './decided-tokens.js';

export interface BearerDeps {
  store: Store;
  access: AccessTokens;
  clock: () => number;
  log: Logger;
  /** Tokens already decided (forward auth's hot path); without it every check goes to the store. */
  decided?: DecidedTokens;
}

/**
 * Bearer authentication for latchkey's own endpoints and forward auth: signature and claims, then the
 * revocation state in the store (session live, token not deny-listed, user enabled). The token arrives
 * already extracted from the request (routes/common.ts `bearerToken`). A token decided before is answered
 * from `decided` (src/tokens/decided-tokens.ts) while that memory is kept up to date.
 */
export class BearerAuth {
  /** When the store last answered a revocation check (for the bounded fail-open of forward auth). */
  private storeAnsweredAt = 0;

  constructor(private readonly deps: BearerDeps) {}

  /** Signature and claims only, no revocation check; null if they do not hold (logout's optional Bearer). */
  async signedClaims(token: string | undefined): Promise<AccessClaims | null> {
    if (!token) return null;
    return this.deps.access.verify(token, this.deps.clock()).catch(() => null);
  }

  async authenticate(token: string | undefined): Promise<AccessClaims> {
    return (await this.check(token, 0)).claims;
  }

  /**
   * Like `authenticate`, but while the store is unreachable it may accept a token whose signature holds,
   * for at most `failOpenMs` after the store last answered (0: never).
   */
  async check(token: string | undefined, failOpenMs: number): Promise<{ claims: AccessClaims; revocationChecked: boolean }> {
    if (!token) throw invalidToken('A Bearer access token is required.');
    const now = this.deps.clock();
    const decided = this.deps.decided;
    if (decided) {
      const hit = decided.lookup(token, now);
      if (hit === REVOKED) throw invalidToken();
      if (hit) return { claims: hit, revocationChecked: true };
    }
    const claims = await this.deps.access.verify(token, now);
    const mark = decided?.mark() ?? -1;
    let active: boolean;
    try {
      active = await this.deps.store.isAccessTokenActive({ userId: claims.sub, sessionId: claims.sid, jti: claims.jti }, now);
      this.storeAnsweredAt = now;
    } catch (err) {
      if (failOpenMs > 0 && now - this.storeAnsweredAt <= failOpenMs) {
        this.deps.log.warn({ userId: claims.sub, reason: (err as Error).message }, 'store unreachable: FAILING OPEN on a signed token');
        return { claims, revocationChecked: false };
      }
      throw err;
    }
    // A revocation applied here while the store was being asked wins over the store's earlier answer.
    if (!active || decided?.revoked(claims)) throw invalidToken();
    decided?.remember(token, claims, mark);
    return { claims, revocationChecked: true };
  }
}
