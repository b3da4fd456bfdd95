/**
 * Runs the example resource server (app.ts).
 *
 *   LATCHKEY_URL=http://localhost:3000 REDIS_URL=redis://127.0.0.1:6379 npx tsx examples/resource-server/server.ts
 *
 * CORS_ORIGINS (comma-separated) lets browser apps on those origins call it, as examples/spa does.
 */
import { Redis } from 'ioredis';
import { buildResourceServer } from './app.js';

const env = process.env;
const latchkeyUrl = env.LATCHKEY_URL ?? 'http://localhost:3000';
const issuer = env.LATCHKEY_ISSUER ?? latchkeyUrl;

// A client without keyPrefix and without an offline queue: while Redis is down, lookups fail fast and
// the verifier's policy (fail closed by default) decides.
const redis = env.REDIS_URL ? new Redis(env.REDIS_URL, { enableOfflineQueue: false, maxRetriesPerRequest: 1 }) : undefined;
redis?.on('error', () => undefined);

const { app } = await buildResourceServer({
  latchkeyUrl,
  issuer,
  audience: env.LATCHKEY_AUDIENCE ?? issuer,
  redis,
  keyPrefix: env.REDIS_KEY_PREFIX ?? 'lk:',
  corsOrigins: env.CORS_ORIGINS?.split(',').map((o) => o.trim()).filter(Boolean),
  logLevel: env.LOG_LEVEL,
});
const address = await app.listen({ host: env.HOST ?? '127.0.0.1', port: Number(env.PORT ?? 4000) });
process.stdout.write(`resource server listening on ${address}\n`);

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    void app
      .close()
      .then(() => redis?.disconnect())
      .finally(() => process.exit(0));
  });
}
