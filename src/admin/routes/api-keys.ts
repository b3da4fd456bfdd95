import type { FastifyPluginAsync } from 'fastify';
import { z } from 'zod';
import type { AppServices } from '../../app.js';
import { ApiError } from '../../errors.js';
import { adminContext } from '../auth.js';
import { parse } from '../../routes/common.js';
import type { AdminKeyRecord } from '../../store/store.js';

const iso = (ms: number) => new Date(ms).toISOString();
const createBody = z.strictObject({
  name: z.string().regex(/^[A-Za-z0-9_.:-]{1,64}$/, 'must be 1-64 letters, digits or _.:-'),
  expires_in: z.number().int().min(60).max(10 * 365 * 86_400).optional(),
});
const params = z.strictObject({ id: z.string().min(1).max(64) });

export const keyView = (k: AdminKeyRecord) => ({
  id: k.id,
  name: k.name,
  created_at: iso(k.createdAt),
  expires_at: k.expiresAt === null ? null : iso(k.expiresAt),
  created_by: k.createdBy,
});

/** Admin API keys: created (the key is shown once), listed (never the key), revoked by id or name. */
export const adminKeyRoutes: FastifyPluginAsync<{ services: AppServices }> = async (app, { services }) => {
  app.get('/admin/api-keys', async () => ({ keys: (await services.adminKeys.list()).map(keyView) }));

  app.post('/admin/api-keys', async (request, reply) => {
    const body = parse(createBody, request.body);
    const { record, key } = await services.adminKeys.create(body.name, body.expires_in ?? null, adminContext(request));
    return reply.code(201).send({ ...keyView(record), key });
  });

  app.delete('/admin/api-keys/:id', async (request, reply) => {
    const { id } = parse(params, request.params);
    if (!(await services.adminKeys.revoke(id, adminContext(request)))) throw new ApiError('not_found', 'No such admin key.');
    return reply.code(204).send();
  });
};
