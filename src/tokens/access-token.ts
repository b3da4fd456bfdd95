import { sign as rsaSign, type KeyObject } from 'node:crypto';
import { verifyAccessToken, VerifyError, type ClaimRules } from '@latchkey/verifier';
import { invalidToken } from '../errors.js';
import type { KeyStore } from '../keys/keystore.js';
import { randomToken } from './random.js';

/** Claims of a latchkey access token (RFC 9068 profile, RS256 only per RFC 8725 §3.1). */
export interface AccessClaims {
  iss: string;
  sub: string;
  aud: string;
  iat: number;
  exp: number;
  jti: string;
  sid: string;
  roles?: string[];
  /** The client the session was started for (RFC 9068 §2.2); older tokens may lack it. */
  client_id?: string;
}

export interface AccessTokenOptions {
  issuer: string;
  audience: string;
  ttlSeconds: number;
  clockSkewSeconds: number;
}

export class NoSigningKeyError extends Error {
  constructor() {
    super('no signing key is active');
    this.name = 'NoSigningKeyError';
  }
}

export class AccessTokens {
  constructor(
    private readonly keys: KeyStore,
    private readonly opts: AccessTokenOptions,
  ) {
    this.rules = { issuer: opts.issuer, audience: opts.audience, clockToleranceSeconds: opts.clockSkewSeconds, maxLifetimeSeconds: opts.ttlSeconds };
  }

  private readonly rules: ClaimRules;

  /** The encoded JOSE header per kid: the same bytes for every token a key signs. */
  private readonly headers = new Map<string, string>();

  /**
   * Signs a token for a session. `notAfter` (ms) caps `exp` so no access token outlives its session.
   * No e-mail or other personal data goes in: access tokens are readable by every resource server.
   *
   * The JWS compact serialisation (RFC 7515 §7.1) is assembled here and signed with node:crypto, on
   * libuv's thread pool or, with `inline`, on the event loop. jose signs through WebCrypto, which on a
   * small machine costs about 100 µs more CPU per RS256 signature. The tests verify what is signed here
   * with jose as well.
   */
  async sign(p: { userId: string; sessionId: string; clientId?: string; roles: string[]; now: number; notAfter: number; inline?: boolean }) {
    const signer = this.keys.signer(p.now);
    if (!signer) throw new NoSigningKeyError();
    const iat = Math.floor(p.now / 1000);
    const exp = Math.max(iat + 1, Math.min(iat + this.opts.ttlSeconds, Math.floor(p.notAfter / 1000)));
    const jti = randomToken(16);
    const claims: AccessClaims = { iss: this.opts.issuer, sub: p.userId, aud: this.opts.audience, iat, exp, jti, sid: p.sessionId };
    if (p.roles.length > 0) claims.roles = p.roles;
    if (p.clientId) claims.client_id = p.clientId;
    const input = `${this.header(signer.kid)}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}`;
    const signature = p.inline
      ? rsaSign('sha256', Buffer.from(input), signer.privateKey).toString('base64url')
      : await signRs256(input, signer.privateKey);
    const token = `${input}.${signature}`;
    return { token, jti, exp, expiresIn: exp - iat };
  }

  private header(kid: string): string {
    let h = this.headers.get(kid);
    if (!h) {
      h = Buffer.from(JSON.stringify({ alg: 'RS256', typ: 'at+jwt', kid })).toString('base64url');
      this.headers.set(kid, h);
    }
    return h;
  }

  /**
   * Verifies shape, signature, algorithm, type, issuer, audience and times against the keys published now,
   * with the same function a resource server's `@latchkey/verifier` runs (one set of rules, node:crypto's
   * RSA verification). Revocation is the caller's second step. Any failure, whatever threw it, is
   * `invalid_token` with no further detail: nothing a client sends may end in a 5xx.
   */
  async verify(token: string, now: number): Promise<AccessClaims> {
    try {
      const claims = await verifyAccessToken(
        token,
        (header) => {
          const key = header.kid ? this.keys.verificationKey(header.kid, now) : null;
          if (!key) throw new Error('no published key for this kid');
          return key;
        },
        this.rules,
        now,
      );
      return claims as unknown as AccessClaims;
    } catch (err) {
      // Every refusal is the same 401 for the client; metrics learn whether it was only the lifetime.
      throw Object.assign(invalidToken(), { refusal: err instanceof VerifyError && err.code === 'expired' ? 'expired' : 'invalid' });
    }
  }
}

/**
 * Why `verify` refused a token, for metrics only: the client gets the same `invalid_token` either way.
 * `expired` only when the signature, issuer and audience held and only the lifetime did not.
 */
export function refusalOf(err: unknown): 'expired' | 'invalid' {
  return (err as { refusal?: string }).refusal === 'expired' ? 'expired' : 'invalid';
}

/** RSASSA-PKCS1-v1_5 with SHA-256 (RFC 7518 §3.3), base64url-encoded. */
function signRs256(input: string, key: KeyObject): Promise<string> {
  // With a callback, node:crypto signs on the thread pool.
  return new Promise((resolve, reject) => rsaSign('sha256', Buffer.from(input), key, (err, sig) => (err ? reject(err) : resolve(sig.toString('base64url')))));
}
