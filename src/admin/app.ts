import Fastify, { type FastifyBaseLogger, type FastifyError, type FastifyInstance } from 'fastify';
import type { AppServices } from '../app.js';
import { toApiError, trustProxyOption } from '../app.js';
import type { Config } from '../config.js';
import { ApiError } from '../errors.js';
import { authenticateAdmin } from './auth.js';
import { adminKeyRoutes } from './routes/api-keys.js';
import { auditRoutes } from './routes/audit.js';
import { consoleRoutes } from './routes/console.js';
import { tokenAdminRoutes } from './routes/tokens.js';
import { userAdminRoutes } from './routes/users.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The authenticated operator (`admin:<id>` or `key:<name>`), for the audit trail (auth.ts `adminContext`). */
    adminActor?: string;
  }
  interface FastifyContextConfig {
    /** Reachable without admin credentials: the console's page and its sign-in (src/admin/routes/console.ts). */
    adminPublic?: true;
  }
}

/**
 * The admin API (README "The admin API"): a Fastify instance of its own, served on its own port
 * (LATCHKEY_ADMIN_PORT) and never on the public one. It shares the public app's services, so a revocation
 * made here is the same revocation, published the same way. Never listens; server.ts does.
 */
export async function buildAdminApp(config: Config, services: AppServices): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: services.log as FastifyBaseLogger,
    bodyLimit: config.bodyLimit,
    trustProxy: trustProxyOption(config),
    return503OnClosing: true,
  });
  app.removeContentTypeParser('text/plain');
  app.decorateRequest('adminActor', undefined);
  app.setErrorHandler((err: FastifyError, request, reply) => {
    const api = toApiError(err, request.log, services.metrics);
    return reply.code(api.status).headers(api.headers).send(api.toBody());
  });
  app.setNotFoundHandler((_request, reply) => reply.code(404).send(new ApiError('not_found', 'No such endpoint.').toBody()));

  // Every call is authenticated before its body is even parsed; nothing runs for a caller who fails.
  // The only exceptions: the console's static page and its sign-in and sign-out, which check for themselves.
  app.addHook('onRequest', async (request) => {
    if (request.routeOptions.config.adminPublic) return;
    request.adminActor = await authenticateAdmin(request, services);
  });
  app.addHook('onSend', async (_request, reply) => {
    reply.header('cache-control', 'no-store');
  });

  await app.register(userAdminRoutes, { services, config });
  await app.register(tokenAdminRoutes, { services });
  await app.register(auditRoutes, { services });
  await app.register(adminKeyRoutes, { services });
  await app.register(consoleRoutes, { services });
  return app;
}
