import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { MemoryStore } from '../../src/store/memory-store.js';
import { buildTestAdmin, buildTestApp } from '../helpers/app.js';
import { bearer, loginNative, PASSWORD, uniqueEmail } from '../helpers/client.js';

async function passwordFile(password: string): Promise<string> {
  const path = join(await mkdtemp(join(tmpdir(), 'lk-boot-')), 'password');
  await writeFile(path, `${password}\n`, { mode: 0o600 });
  return path;
}

describe('the first admin without Redis: LATCHKEY_BOOTSTRAP_ADMIN_EMAIL and _PASSWORD_FILE', () => {
  it('creates the admin at start-up on the embedded store, once, and never changes an existing account', async () => {
    const store = new MemoryStore();
    const email = uniqueEmail('boot');
    const env = { LATCHKEY_BOOTSTRAP_ADMIN_EMAIL: email, LATCHKEY_BOOTSTRAP_ADMIN_PASSWORD_FILE: await passwordFile(PASSWORD) };
    const t = await buildTestApp('memory', env, { store });
    const admin = await buildTestAdmin(t);
    try {
      const login = await loginNative(t.app, email);
      const res = await admin.inject({ url: `/admin/users?email=${encodeURIComponent(email)}`, headers: bearer(login.access) });
      expect(res.statusCode).toBe(200);
      expect((res.json() as { users: unknown[] }).users[0]).toMatchObject({ email, roles: ['admin'] });
      await t.app.latchkey.audit.flush();
      const created = (await store.readAudit({ type: 'account_created', limit: 5, scanLimit: 100 })).entries[0];
      expect(created).toMatchObject({ actor: 'system:bootstrap' });
    } finally {
      await admin.close();
      await t.close();
    }
    // A second start with another password leaves the account as it is.
    const again = await buildTestApp('memory', { ...env, LATCHKEY_BOOTSTRAP_ADMIN_PASSWORD_FILE: await passwordFile('another long passphrase') }, { store });
    try {
      await loginNative(again.app, email);
    } finally {
      await again.close();
    }
    await store.close();
  });

  it('refuses to start with a password the policy refuses', async () => {
    const env = { LATCHKEY_BOOTSTRAP_ADMIN_EMAIL: uniqueEmail('boot'), LATCHKEY_BOOTSTRAP_ADMIN_PASSWORD_FILE: await passwordFile('password') };
    await expect(buildTestApp('memory', env)).rejects.toThrow(/LATCHKEY_BOOTSTRAP_ADMIN_PASSWORD_FILE: password: .*common/);
  });
});
