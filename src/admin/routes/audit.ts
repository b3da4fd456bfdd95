import type { FastifyPluginAsync } from 'fastify';
import { z } from 'zod';
import type { AppServices } from '../../app.js';
import { auditView } from '../../audit/audit.js';
import { parse } from '../../routes/common.js';

const query = z.strictObject({
  /** A user id, or an e-mail address of an existing account. */
  user: z.string().min(1).max(254).optional(),
  type: z.string().regex(/^[a-z_]{1,64}$/).optional(),
  limit: z.coerce.number().int().min(1).max(500).default(50),
  cursor: z.string().regex(/^\d+-\d+$/).optional(),
});

/** The audit trail, newest first, filtered and paged; `next_cursor` continues where a page stopped. */
export const auditRoutes: FastifyPluginAsync<{ services: AppServices }> = async (app, { services }) => {
  app.get('/admin/audit', async (request) => {
    const q = parse(query, request.query);
    let userId = q.user;
    if (userId?.includes('@')) userId = (await services.accounts.findByEmail(userId))?.id ?? 'unknown';
    const page = await services.audit.query({
      limit: q.limit,
      ...(userId !== undefined ? { userId } : {}),
      ...(q.type !== undefined ? { type: q.type } : {}),
      ...(q.cursor !== undefined ? { before: q.cursor } : {}),
    });
    return { entries: page.entries.map(auditView), next_cursor: page.next };
  });
};
