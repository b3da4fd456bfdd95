import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestAdmin, buildTestApp, type TestApp } from '../helpers/app.js';
import { bearer, loginNative, PASSWORD, register, uniqueEmail } from '../helpers/client.js';
import { specChecker } from '../support/openapi.js';

const spec = specChecker('openapi-admin.yaml');
const NOBODY = '00000000-0000-4000-8000-000000000000';

/** Real admin responses, checked against openapi-admin.yaml. */
describe('admin responses match openapi-admin.yaml', () => {
  let t: TestApp;
  let admin: FastifyInstance;
  const seen = new Set<string>();

  beforeAll(async () => {
    t = await buildTestApp('memory');
    admin = await buildTestAdmin(t);
  });
  afterAll(async () => {
    await admin.close();
    await t.close();
  });

  it('every operation, success and error responses', async () => {
    const a = await register(t.app);
    await t.store.setRoles(a.id, ['admin']);
    const token = (await loginNative(t.app, a.email)).access;
    const plain = await register(t.app);
    const plainToken = (await loginNative(t.app, plain.email)).access;

    async function check(method: string, template: string, url: string, body?: unknown, auth: string | null = token) {
      const res: LightMyRequestResponse = await admin.inject({
        method: method as 'GET',
        url,
        headers: { ...(auth ? bearer(auth) : {}), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        payload: body === undefined ? undefined : JSON.stringify(body),
      });
      spec.assertMatchesSpec(method, template, { statusCode: res.statusCode, headers: res.headers, body: res.body });
      seen.add(`${method.toUpperCase()} ${template}`);
      return res;
    }

    const email = uniqueEmail('spec-admin');
    const created = await check('post', '/admin/users', '/admin/users', { email, password: PASSWORD, roles: ['a'] });
    const id = (created.json() as { id: string }).id;
    await check('post', '/admin/users', '/admin/users', { email, password: PASSWORD });
    await check('post', '/admin/users', '/admin/users', { email: uniqueEmail(), password: 'password' });
    await check('post', '/admin/users', '/admin/users', { email }, null);
    await check('post', '/admin/users', '/admin/users', { email }, plainToken);
    await check('get', '/admin/users', `/admin/users?email=${encodeURIComponent(email)}`);
    await check('get', '/admin/users', '/admin/users?limit=1');
    await check('get', '/admin/users', '/admin/users?limit=0');
    await check('get', '/admin/users/{id}', `/admin/users/${id}`);
    await check('get', '/admin/users/{id}', `/admin/users/${NOBODY}`);

    const s = await loginNative(t.app, email);
    await loginNative(t.app, email);
    await check('get', '/admin/users/{id}/sessions', `/admin/users/${id}/sessions`);
    await check('get', '/admin/users/{id}/sessions', `/admin/users/${NOBODY}/sessions`);
    await check('delete', '/admin/users/{id}/sessions/{sid}', `/admin/users/${id}/sessions/${s.sessionId}`);
    await check('delete', '/admin/users/{id}/sessions/{sid}', `/admin/users/${id}/sessions/${s.sessionId}`);
    await check('delete', '/admin/users/{id}/sessions', `/admin/users/${id}/sessions`);
    await check('delete', '/admin/users/{id}/sessions', `/admin/users/${NOBODY}/sessions`);
    await check('post', '/admin/users/{id}/disable', `/admin/users/${id}/disable`);
    await check('post', '/admin/users/{id}/disable', `/admin/users/${NOBODY}/disable`);
    await check('post', '/admin/users/{id}/password-reset', `/admin/users/${id}/password-reset`);
    await check('post', '/admin/users/{id}/enable', `/admin/users/${id}/enable`);
    await check('post', '/admin/users/{id}/enable', `/admin/users/${NOBODY}/enable`);
    await check('put', '/admin/users/{id}/roles', `/admin/users/${id}/roles`, { roles: ['x'], revoke: true });
    await check('put', '/admin/users/{id}/roles', `/admin/users/${id}/roles`, { roles: 'x' });
    await check('put', '/admin/users/{id}/roles', `/admin/users/${NOBODY}/roles`, { roles: [] });
    // No SMTP in this app: 503; with SMTP, 202 (test/accounts/password-reset.test.ts).
    await check('post', '/admin/users/{id}/password-reset', `/admin/users/${id}/password-reset`);
    await check('post', '/admin/users/{id}/password-reset', `/admin/users/${NOBODY}/password-reset`);

    const victim = await loginNative(t.app, email);
    await check('post', '/admin/tokens/revoke', '/admin/tokens/revoke', { token: victim.access });
    await check('post', '/admin/tokens/revoke', '/admin/tokens/revoke', { token: 'x' });

    await check('get', '/admin/audit', '/admin/audit?limit=5');
    await check('get', '/admin/audit', `/admin/audit?user=${id}&type=account_created`);
    await check('get', '/admin/audit', '/admin/audit?limit=9999');

    const key = await check('post', '/admin/api-keys', '/admin/api-keys', { name: 'spec', expires_in: 600 });
    await check('post', '/admin/api-keys', '/admin/api-keys', { name: 'spec' });
    await check('post', '/admin/api-keys', '/admin/api-keys', { name: 'bad name' });
    await check('get', '/admin/api-keys', '/admin/api-keys');
    await check('get', '/admin/api-keys', '/admin/api-keys', undefined, (key.json() as { key: string }).key);
    await check('delete', '/admin/api-keys/{id}', `/admin/api-keys/${(key.json() as { id: string }).id}`);
    await check('delete', '/admin/api-keys/{id}', '/admin/api-keys/spec');

    // The ops console: its page and files without credentials, its sign-in and sign-out.
    await check('get', '/admin/console', '/admin/console', undefined, null);
    await check('get', '/admin/console/{file}', '/admin/console/console.js', undefined, null);
    await check('get', '/admin/console/{file}', '/admin/console/console.css', undefined, null);
    await check('get', '/admin/console/{file}', '/admin/console/nothing.js', undefined, null);
    const signedIn = await check('post', '/admin/console/login', '/admin/console/login', { email: a.email, password: PASSWORD }, null);
    await check('post', '/admin/console/login', '/admin/console/login', { email: plain.email, password: PASSWORD }, null);
    await check('post', '/admin/console/login', '/admin/console/login', { email: 'not an e-mail', password: PASSWORD }, null);
    const crossSite = await admin.inject({
      method: 'POST',
      url: '/admin/console/login',
      headers: { 'content-type': 'application/json', 'sec-fetch-site': 'cross-site' },
      payload: JSON.stringify({ email: a.email, password: PASSWORD }),
    });
    spec.assertMatchesSpec('post', '/admin/console/login', { statusCode: crossSite.statusCode, headers: crossSite.headers, body: crossSite.body });
    const form = await admin.inject({ method: 'POST', url: '/admin/console/login', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: 'email=x' });
    spec.assertMatchesSpec('post', '/admin/console/login', { statusCode: form.statusCode, headers: form.headers, body: form.body });
    const consoleToken = (signedIn.json() as { access_token: string }).access_token;
    await check('post', '/admin/console/logout', '/admin/console/logout', undefined, consoleToken);
    await check('post', '/admin/console/logout', '/admin/console/logout', undefined, consoleToken);

    // Last: the switch, limited to a role nobody here holds.
    await check('post', '/admin/revoke-all', '/admin/revoke-all', { role: 'nobody-holds-this' });
    await check('post', '/admin/revoke-all', '/admin/revoke-all', { role: 'bad role!' });

    const documented = spec.documentedOperations().map((o) => `${o.method.toUpperCase()} ${o.path}`);
    expect([...seen].sort()).toEqual(documented.sort());
  });
});
