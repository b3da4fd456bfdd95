import fastifyCors from '@fastify/cors';
import Fastify, { type FastifyInstance } from 'fastify';
import type { Redis } from 'ioredis';
import latchkeyAuth from '@latchkey/verifier/fastify';
import { createVerifier, type Verifier } from '@latchkey/verifier';

export interface ResourceServerOptions {
  /** Where latchkey answers, base path included: its JWKS is at `${latchkeyUrl}/.well-known/jwks.json`. */
  latchkeyUrl: string;
  issuer: string;
  audience: string;
  /** Without it, only signatures and claims are checked: revocations show only when tokens expire. */
  redis?: Redis;
  keyPrefix?: string;
  /**
   * Origins of browser apps that call this API. They send the access token in `Authorization`, never a
   * cookie, so CORS here needs no credentials.
   */
  corsOrigins?: string[];
  logLevel?: string;
}

/**
 * A resource server protected by latchkey: verifies access tokens offline against latchkey's JWKS and
 * honours revocations (logout, logout-all, reuse detection) within about a second through Redis.
 */
export async function buildResourceServer(options: ResourceServerOptions): Promise<{ app: FastifyInstance; verifier: Verifier }> {
  const verifier = createVerifier({
    issuer: options.issuer,
    audience: options.audience,
    jwksUrl: `${options.latchkeyUrl}/.well-known/jwks.json`,
    redis: options.redis,
    keyPrefix: options.keyPrefix ?? 'lk:',
  });

  const app = Fastify({ logger: { level: options.logLevel ?? 'info' } });
  const corsOrigins = new Set(options.corsOrigins ?? []);
  await app.register(fastifyCors, {
    origin: (origin, callback) => callback(null, origin !== undefined && corsOrigins.has(origin)),
    methods: ['GET'],
    allowedHeaders: ['authorization'],
    exposedHeaders: ['www-authenticate', 'retry-after'],
    maxAge: 600,
  });
  await app.register(latchkeyAuth, { verifier });

  app.get('/public', async () => ({ hello: 'anyone' }));
  app.get('/me', { preHandler: app.requireUser }, async (request) => ({
    user: request.user?.sub,
    session: request.user?.sid,
    roles: request.user?.roles ?? [],
  }));
  app.addHook('onClose', async () => verifier.close());

  await verifier.ready();
  return { app, verifier };
}
