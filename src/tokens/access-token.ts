import { randomBytes } from 'node:crypto';
import { errors, jwtVerify, SignJWT, type JWTHeaderParameters } from 'jose';
import { invalidToken } from '../errors.js';
import type { KeyStore } from '../keys/keystore.js';

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
  ) {}

  /**
   * Signs a token for a session. `notAfter` (ms) caps `exp` so no access token outlives its session.
   * No e-mail or other personal data goes in: access tokens are readable by every resource server.
   */
  async sign(p: { userId: string; sessionId: string; roles: string[]; now: number; notAfter: number }) {
    const signer = this.keys.signer(p.now);
    if (!signer) throw new NoSigningKeyError();
    const iat = Math.floor(p.now / 1000);
    const exp = Math.max(iat + 1, Math.min(iat + this.opts.ttlSeconds, Math.floor(p.notAfter / 1000)));
    const jti = randomBytes(16).toString('base64url');
    const claims: Record<string, unknown> = { sid: p.sessionId };
    if (p.roles.length > 0) claims.roles = p.roles;
    const token = await new SignJWT(claims)
      .setProtectedHeader({ alg: 'RS256', typ: 'at+jwt', kid: signer.kid })
      .setIssuer(this.opts.issuer)
      .setSubject(p.userId)
      .setAudience(this.opts.audience)
      .setIssuedAt(iat)
      .setExpirationTime(exp)
      .setJti(jti)
      .sign(signer.privateKey);
    return { token, jti, exp, expiresIn: exp - iat };
  }

  /**
   * Verifies signature, algorithm, type, issuer, audience and lifetime against the keys published now.
   * Revocation is the caller's second step. Any failure is `invalid_token` with no further detail.
   */
  async verify(token: string, now: number): Promise<AccessClaims> {
    try {
      const { payload } = await jwtVerify(
        token,
        (header: JWTHeaderParameters) => {
          const key = header.kid ? this.keys.verificationKey(header.kid, now) : null;
          if (!key) throw new errors.JWKSNoMatchingKey();
          return key;
        },
        {
          algorithms: ['RS256'],
          typ: 'at+jwt',
          issuer: this.opts.issuer,
          audience: this.opts.audience,
          clockTolerance: this.opts.clockSkewSeconds,
          currentDate: new Date(now),
          requiredClaims: ['sub', 'iat', 'exp', 'jti', 'sid'],
        },
      );
      if (typeof payload.sid !== 'string' || typeof payload.jti !== 'string' || typeof payload.sub !== 'string') {
        throw new errors.JWTClaimValidationFailed('malformed claims', payload);
      }
      return payload as unknown as AccessClaims;
    } catch (err) {
      if (err instanceof errors.JOSEError) throw invalidToken();
      throw err;
    }
  }
}
