import type { FastifyPluginAsync } from 'fastify';
import { z } from 'zod';
import type { AppServices } from '../../app.js';
import type { Config } from '../../config.js';
import { ApiError } from '../../errors.js';
import { adminContext } from '../auth.js';
import { emailField, passwordField } from '../../routes/accounts.js';
import { parse, sessionView } from '../../routes/common.js';
import type { UserRecord } from '../../store/store.js';

const iso = (ms: number) => new Date(ms).toISOString();

export const roleList = z.array(z.string().regex(/^[A-Za-z0-9_.:-]{1,64}$/, 'roles are 1-64 letters, digits or _.:-')).max(32);
const userParams = z.strictObject({ id: z.string().min(1).max(64) });
const sessionParams = z.strictObject({ id: z.string().min(1).max(64), sid: z.string().min(1).max(64) });
const findQuery = z.strictObject({
  email: emailField.optional(),
  cursor: z.string().max(64).optional(),
  limit: z.coerce.number().int().min(1).max(100).default(20),
});
const createBody = z.strictObject({ email: emailField, password: passwordField, roles: roleList.default([]) });
const rolesBody = z.strictObject({ roles: roleList, revoke: z.boolean().default(false) });

/** What operators see of an account: never its password hash. */
export async function userView(services: Pick<AppServices, 'store' | 'clock'>, user: UserRecord) {
  const sessions = await services.store.listSessions(user.id, services.clock());
  return {
    id: user.id,
    email: user.email,
    roles: user.roles,
    disabled: user.disabled,
    created_at: iso(user.createdAt),
    last_login_at: user.lastLoginAt ? iso(user.lastLoginAt) : null,
    session_count: sessions.length,
  };
}

export const userAdminRoutes: FastifyPluginAsync<{ services: AppServices; config: Config }> = async (app, { services }) => {
  const { accounts, revocations, store, resets, clock } = services;
  const view = (user: UserRecord) => userView(services, user);

  app.get('/admin/users', async (request) => {
    const q = parse(findQuery, request.query);
    if (q.email !== undefined) {
      const user = await accounts.findByEmail(q.email);
      return { users: user ? [await view(user)] : [], next_cursor: null };
    }
    const page = await store.listUsers(q.cursor, q.limit);
    return { users: await Promise.all(page.users.map(view)), next_cursor: page.next };
  });

  app.post('/admin/users', async (request, reply) => {
    const body = parse(createBody, request.body);
    const created = await accounts.register(body.email, body.password, adminContext(request), body.roles);
    return reply.code(201).send(await view(await accounts.get(created.id)));
  });

  app.get('/admin/users/:id', async (request) => {
    const { id } = parse(userParams, request.params);
    return view(await accounts.get(id));
  });

  app.get('/admin/users/:id/sessions', async (request) => {
    const { id } = parse(userParams, request.params);
    await accounts.get(id);
    const sessions = await store.listSessions(id, clock());
    return sessions.map((s) => ({ ...sessionView(s), channel: s.channel }));
  });

  app.delete('/admin/users/:id/sessions/:sid', async (request, reply) => {
    const { id, sid } = parse(sessionParams, request.params);
    if (!(await revocations.revokeSession(id, sid, 'admin', adminContext(request)))) throw new ApiError('not_found', 'No such session.');
    return reply.code(204).send();
  });

  app.delete('/admin/users/:id/sessions', async (request, reply) => {
    const { id } = parse(userParams, request.params);
    await accounts.get(id);
    await revocations.revokeUser(id, 'admin', adminContext(request));
    return reply.code(204).send();
  });

  app.post('/admin/users/:id/disable', async (request) => {
    const { id } = parse(userParams, request.params);
    await accounts.disable(id, adminContext(request));
    return view(await accounts.get(id));
  });

  app.post('/admin/users/:id/enable', async (request) => {
    const { id } = parse(userParams, request.params);
    await accounts.enable(id, adminContext(request));
    return view(await accounts.get(id));
  });

  app.put('/admin/users/:id/roles', async (request) => {
    const { id } = parse(userParams, request.params);
    const body = parse(rolesBody, request.body);
    await accounts.setRoles(id, body.roles, body.revoke, adminContext(request));
    return view(await accounts.get(id));
  });

  app.post('/admin/users/:id/password-reset', async (request, reply) => {
    const { id } = parse(userParams, request.params);
    const user = await accounts.get(id);
    if (!resets.mailEnabled) {
      throw new ApiError('temporarily_unavailable', 'Password reset mail is not configured (LATCHKEY_SMTP_URL).', { 'retry-after': '60' });
    }
    await resets.start(user, adminContext(request));
    return reply.code(202).send({ status: 'sent' });
  });
};
