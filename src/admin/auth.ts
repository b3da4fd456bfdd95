import type { FastifyRequest } from 'fastify';
import type { ActionContext } from '../audit/context.js';
import { ApiError, invalidToken } from '../errors.js';
import { authorizationHeader, bearerToken, clientContext } from '../routes/common.js';
import type { Store } from '../store/store.js';
import type { BearerAuth } from '../tokens/bearer.js';
import { ADMIN_KEY_PREFIX, type AdminKeys } from './admin-keys.js';

export interface AdminAuthDeps {
  bearer: BearerAuth;
  adminKeys: AdminKeys;
  store: Store;
}

/**
 * Who may call the admin API: the holder of an admin API key, or a user whose access token is good right
 * now (signature, claims and revocation) and whose account has the role `admin` now — read from the store,
 * not from the token, so a demoted admin loses access at once. Returns the actor for the audit trail.
 * No or bad credentials: 401; a good token of a user who is not an admin: 403.
 */
export async function authenticateAdmin(request: FastifyRequest, { bearer, adminKeys, store }: AdminAuthDeps): Promise<string> {
  const header = authorizationHeader(request);
  if (header.startsWith(`Bearer ${ADMIN_KEY_PREFIX}`)) {
    const key = await adminKeys.authenticate(header.slice('Bearer '.length));
    if (!key) throw invalidToken('The admin key is invalid, expired or revoked.');
    return `key:${key.name}`;
  }
  const claims = await bearer.authenticate(bearerToken(request));
  const user = await store.getUser(claims.sub);
  if (!user || user.disabled || !user.roles.includes('admin')) throw new ApiError('forbidden', 'This account may not use the admin API.');
  return `admin:${user.id}`;
}

/**
 * The action context of an admin API request: where it came from, and the operator the app's `onRequest`
 * hook authenticated as its actor. Every handler that changes something builds it and passes it on.
 */
export const adminContext = (request: FastifyRequest): ActionContext => ({ ...clientContext(request), actor: request.adminActor });
