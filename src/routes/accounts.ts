import type { FastifyPluginAsync } from 'fastify';
import { z } from 'zod';
import type { Accounts } from '../accounts/accounts.js';
import type { Config } from '../config.js';
import { ApiError } from '../errors.js';
import { attemptLimit, parse } from './common.js';

export const emailField = z
  .string()
  .max(254)
  .refine((v) => /^[^\s@]+@[^\s@]+$/.test(v.trim()), 'must be an e-mail address');
export const passwordField = z.string().min(1).max(1024);

const registerBody = z.strictObject({
  email: emailField,
  // The password policy (src/accounts/password-policy.ts) has the last word, in bytes.
  password: z.string().min(8, 'must be at least 8 characters').max(4096),
});

export const accountRoutes: FastifyPluginAsync<{ accounts: Accounts; config: Config }> = async (app, { accounts, config }) => {
  app.post('/register', attemptLimit(config), async (request, reply) => {
    if (!config.registration) throw new ApiError('forbidden', 'Registration is disabled.');
    const body = parse(registerBody, request.body);
    const user = await accounts.register(body.email, body.password);
    return reply.code(201).send(user);
  });
};
