import type { Logger } from 'pino';
import type { ActionContext } from './audit/context.js';

/**
 * Security and revocation events. Subscribers (metrics, the audit trail, tests) react to them; the code
 * that emits an event never depends on who listens. An event never carries a token, a password or, for
 * an unknown account, a clear e-mail address.
 */
export type AuthEvent =
  | { type: 'refresh_token_reused'; userId: string; sessionId: string; ip: string | null }
  | { type: 'session_revoked'; userId: string; sessionId: string; reason: SessionRevokeReason }
  | { type: 'user_sessions_revoked'; userId: string; revokedAfter: number; sessionIds: string[]; reason: UserRevokeReason }
  | { type: 'access_token_denied'; userId: string; jti: string; exp: number }
  | { type: 'login_succeeded'; userId: string; sessionId: string }
  /** `emailHash` (a keyed hash, src/audit/audit.ts) stands for an address that has no account. */
  /**
   * A refused login. `emailHash` (a keyed hash, src/audit/audit.ts) stands for an address that has no
   * account, never the address itself; `ip` and `userAgent` when known.
   */
  | {
      type: 'login_failed';
      userId: string | null;
      emailHash?: string | undefined;
      reason: LoginFailure;
      ip?: string | null;
      userAgent?: string | null;
    }
  | { type: 'account_created'; userId: string; roles: string[] }
  | { type: 'account_disabled'; userId: string }
  | { type: 'account_enabled'; userId: string }
  | { type: 'roles_changed'; userId: string; roles: string[]; previous: string[] }
  | { type: 'password_changed'; userId: string }
  | { type: 'password_reset_requested'; userId: string | null; emailHash?: string }
  | { type: 'password_reset_completed'; userId: string }
  | { type: 'password_reset_failed'; userId: string | null }
  | { type: 'admin_key_created'; keyId: string; name: string }
  | { type: 'admin_key_revoked'; keyId: string; name: string }
  /** Signing-key changes made with `latchkey keys` (kids are public: they are in the JWKS). */
  | { type: 'signing_key_generated'; kid: string }
  | { type: 'signing_key_rotated'; kid: string; activatesAt: string; immediate: boolean; retired: string[] }
  | { type: 'signing_key_revoked'; kid: string }
  | { type: 'signing_keys_pruned'; kids: string[] }
  /**
   * The incident switch: every session created before `revokedAfter` (ms) is revoked — every user's, or
   * only those of users holding `role`.
   */
  | { type: 'everyone_revoked'; revokedAfter: number; role: string | null };

export type SessionRevokeReason = 'logout' | 'user_request' | 'session_cap' | 'admin';
export type UserRevokeReason = 'logout_all' | 'disabled' | 'password_changed' | 'password_reset' | 'roles_changed' | 'admin';

/**
 * Why a password check failed: for the audit trail only, never for the client (all answer alike).
 * `not_admin`: a correct password at the ops console for an account without the role `admin`.
 */
export type LoginFailure = 'unknown_account' | 'wrong_password' | 'disabled' | 'throttled' | 'wrong_current_password' | 'not_admin';

/** Why a login was refused. An unknown address counts as `wrong_credentials`, as it answers the same. */
export type LoginFailureCause = 'wrong_credentials' | 'disabled' | 'throttled';

/** `context`: who caused the event and from where (the audit trail's; other subscribers may ignore it). */
export type AuthEventListener = (event: AuthEvent, context: ActionContext) => void;

/**
 * Fan-out of events to subscribers. A failing subscriber is logged and never breaks the request. Every
 * emitter passes the action context it was given (NO_CONTEXT where nothing acts): there is no default, so
 * a context dropped on the way is a type error rather than an entry with the wrong actor.
 */
export class EventBus {
  private readonly listeners: AuthEventListener[] = [];

  constructor(private readonly log: Logger) {}

  on(listener: AuthEventListener): void {
    this.listeners.push(listener);
  }

  emit(event: AuthEvent, context: ActionContext): void {
    for (const listener of this.listeners) {
      try {
        listener(event, context);
      } catch (err) {
        this.log.error({ reason: (err as Error).message, event: event.type }, 'event listener failed');
      }
    }
  }
}
