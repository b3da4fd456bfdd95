import type { FastifyPluginAsync } from 'fastify';
import { z } from 'zod';
import type { Accounts } from '../accounts/accounts.js';
import type { Config } from '../config.js';
import { ApiError } from '../errors.js';
import { attemptLimit, cleanSecret, cleanText, clientContext, maxBytes, parse } from './common.js';

export const emailField = z
  .string()
  .max(254)
  .refine(cleanText, 'must not contain control, format or invisible characters')
  .refine(maxBytes(254), 'must be at most 254 bytes')
  .refine((v) => /^[^\s@]+@[^\s@]+$/.test(v.trim()), 'must be an e-mail address');

/** Passwords are capped in UTF-8 bytes (what argon2 hashes), not in characters. */
export const PASSWORD_MAX_BYTES = 1024;
const password = () =>
  z
    .string()
    .refine(cleanSecret, 'must not contain control characters or lone surrogates')
    .refine(maxBytes(PASSWORD_MAX_BYTES), `must be at most ${PASSWORD_MAX_BYTES} bytes`);
export const passwordField = password().refine((v) => v.length > 0, 'is required');

const registerBody = z.strictObject({
  email: emailField,
  // The password policy (src/accounts/password-policy.ts) has the last word, in bytes.
  password: password().refine((v) => [...v].length >= 8, 'must be at least 8 characters'),
});

export const accountRoutes: FastifyPluginAsync<{ accounts: Accounts; config: Config }> = async (app, { accounts, config }) => {
  app.post('/register', attemptLimit(config), async (request, reply) => {
    if (!config.registration) throw new ApiError('forbidden', 'Registration is disabled.');
    const body = parse(registerBody, request.body);
    const user = await accounts.register(body.email, body.password, clientContext(request));
    return reply.code(201).send(user);
  });
};
