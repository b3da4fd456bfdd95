/**
 * A resource server protected by latchkey: verifies access tokens offline against latchkey's JWKS and
 * honours revocations (logout, logout-all, reuse detection) within about a second through Redis.
 *
 *   LATCHKEY_URL=http://localhost:3000 REDIS_URL=redis://127.0.0.1:6379 npx tsx examples/resource-server/server.ts
 */
import Fastify from 'fastify';
import { Redis } from 'ioredis';
import latchkeyAuth from '@latchkey/verifier/fastify';
import { createVerifier } from '@latchkey/verifier';

const env = process.env;
const latchkeyUrl = env.LATCHKEY_URL ?? 'http://localhost:3000';
const issuer = env.LATCHKEY_ISSUER ?? latchkeyUrl;

// A client without keyPrefix and without an offline queue: while Redis is down, lookups fail fast and
// the verifier's policy (fail closed by default) decides.
const redis = env.REDIS_URL ? new Redis(env.REDIS_URL, { enableOfflineQueue: false, maxRetriesPerRequest: 1 }) : undefined;
redis?.on('error', () => undefined);

const verifier = createVerifier({
  issuer,
  audience: env.LATCHKEY_AUDIENCE ?? issuer,
  jwksUrl: `${latchkeyUrl}/.well-known/jwks.json`,
  redis,
  keyPrefix: env.REDIS_KEY_PREFIX ?? 'lk:',
});

const app = Fastify({ logger: { level: env.LOG_LEVEL ?? 'info' } });
await app.register(latchkeyAuth, { verifier });

app.get('/public', async () => ({ hello: 'anyone' }));
app.get('/me', { preHandler: app.requireUser }, async (request) => ({
  user: request.user?.sub,
  session: request.user?.sid,
  roles: request.user?.roles ?? [],
}));

await verifier.ready();
const address = await app.listen({ host: env.HOST ?? '127.0.0.1', port: Number(env.PORT ?? 4000) });
process.stdout.write(`resource server listening on ${address}\n`);

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    void app
      .close()
      .then(() => verifier.close())
      .then(() => redis?.disconnect())
      .finally(() => process.exit(0));
  });
}
