import type { FastifyPluginAsync } from 'fastify';
import type { Config } from '../config.js';
import { unavailable } from '../errors.js';
import type { KeyStore } from '../keys/keystore.js';
import type { Store } from '../store/store.js';

export interface MetaOptions {
  config: Config;
  keys: KeyStore;
  store: Store;
  clock: () => number;
}

/** JWKS and health. None of these touch the store except readiness, so JWKS stays up when Redis is down. */
export const metaRoutes: FastifyPluginAsync<MetaOptions> = async (app, { config, keys, store, clock }) => {
  app.get('/.well-known/jwks.json', async (request, reply) => {
    const jwks = keys.jwks(clock());
    reply.header('cache-control', `public, max-age=${config.jwksMaxAge}`).header('etag', jwks.etag);
    const match = request.headers['if-none-match'];
    if (match && match.split(',').some((tag) => tag.trim().replace(/^W\//, '') === jwks.etag)) {
      return reply.code(304).send();
    }
    return reply.type('application/json').send(jwks.body);
  });

  app.get('/healthz', async () => ({ status: 'ok' }));

  app.get('/readyz', async (request, reply) => {
    try {
      await store.ping();
    } catch (err) {
      request.log.warn({ reason: (err as Error).message }, 'not ready: store unreachable');
      throw unavailable();
    }
    if (!keys.signer(clock())) {
      request.log.warn('not ready: no active signing key');
      throw unavailable();
    }
    return reply.send({ status: 'ready' });
  });
};
