import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { VerifyError, type AccessTokenClaims, type Verifier } from './index.js';

/**
 * A Fastify plugin on top of the verifier: `app.requireUser` is a preHandler that accepts only a valid,
 * unrevoked Bearer token and puts its claims on `request.user`.
 *
 *   await app.register(latchkeyAuth, { verifier });
 *   app.get('/me', { preHandler: app.requireUser }, async (request) => request.user);
 */

declare module 'fastify' {
  interface FastifyInstance {
    requireUser: (request: FastifyRequest, reply: FastifyReply) => Promise<void>;
  }
  interface FastifyRequest {
    user: AccessTokenClaims | null;
  }
}

export interface LatchkeyAuthOptions {
  verifier: Verifier;
}

/**
 * `Authorization: Bearer <token>` (RFC 6750 §2.1) where the token is a canonical compact JWS: three
 * base64url segments without padding (RFC 7515 §7.1). Anything else is no token at all, the same rule as
 * latchkey's own endpoints.
 */
const BEARER = /^Bearer ([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)$/;

async function plugin(app: FastifyInstance, { verifier }: LatchkeyAuthOptions): Promise<void> {
  app.decorateRequest('user', null);
  app.decorate('requireUser', async (request: FastifyRequest, reply: FastifyReply) => {
    const token = BEARER.exec(request.headers.authorization ?? '')?.[1];
    try {
      if (!token) throw new VerifyError('invalid', 'missing bearer token');
      request.user = await verifier.verify(token);
    } catch (err) {
      if (!(err instanceof VerifyError)) throw err;
      if (err.code === 'unavailable') {
        return reply
          .code(503)
          .header('retry-after', '2')
          .send({ error: 'temporarily_unavailable', error_description: 'Token revocation state is unavailable; retry later.' });
      }
      return reply
        .code(401)
        .header('www-authenticate', 'Bearer error="invalid_token"')
        .send({ error: 'invalid_token', error_description: 'The access token is invalid, expired or revoked.' });
    }
  });
}

/** Not encapsulated (fastify-plugin), so the decorators reach the routes of the registering scope. */
export const latchkeyAuth = fp(plugin, { fastify: '5.x', name: '@latchkey/verifier' });
export default latchkeyAuth;
