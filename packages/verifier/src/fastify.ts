import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
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

async function latchkeyAuth(app: FastifyInstance, { verifier }: LatchkeyAuthOptions): Promise<void> {
  app.decorateRequest('user', null);
  app.decorate('requireUser', async (request: FastifyRequest, reply: FastifyReply) => {
    const match = /^Bearer ([A-Za-z0-9._~+/-]+=*)$/.exec(request.headers.authorization ?? '');
    try {
      if (!match?.[1]) throw new VerifyError('invalid', 'missing bearer token');
      request.user = await verifier.verify(match[1]);
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

// Registered without encapsulation, so the decorators reach the routes of the registering scope
// (what fastify-plugin does).
(latchkeyAuth as unknown as Record<symbol, boolean>)[Symbol.for('skip-override')] = true;

export default latchkeyAuth;
export { latchkeyAuth };
