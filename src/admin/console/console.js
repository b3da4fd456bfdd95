// @ts-check
/**
 * The ops console's page script: a plain ES module, served as it is (no build step) and type-checked by
 * `npm run typecheck` (tsconfig.json beside it).
 *
 * Security (README "Ops console"):
 * - The access token lives in this module's memory only: never in localStorage, sessionStorage or a
 *   cookie. A reload or a closed tab forgets it; sign in again.
 * - The admin API reads credentials from the Authorization header only, which another site's page cannot
 *   set on a request to this origin (the admin app answers no CORS preflight).
 * - Server data (an e-mail, a user agent, audit details: whatever a client sent) is written with
 *   textContent only, never parsed as HTML.
 */

/**
 * @typedef {{ id: string, email: string, roles: string[], disabled: boolean, created_at: string,
 *   last_login_at: string | null, session_count: number }} User
 * @typedef {{ id: string, created_at: string, last_used_at: string, expires_at: string,
 *   user_agent: string | null, ip: string | null, channel: string }} Session
 * @typedef {{ id: string, time: string, type: string, user_id: string | null, actor: string,
 *   ip: string | null, user_agent: string | null, details: Record<string, unknown> }} AuditEntry
 */

class ApiError extends Error {
  /** @param {number} status @param {string} code @param {string} description */
  constructor(status, code, description) {
    super(description);
    this.status = status;
    this.code = code;
  }
}

/** @type {{ token: string, email: string } | null} */
let signedIn = null;
/** @type {User | null} */
let shown = null;

/** @param {string} id */
function $(id) {
  const el = document.getElementById(id);
  if (!el) throw new Error(`no #${id}`);
  return el;
}

/** @param {string} id */
const input = (id) => /** @type {HTMLInputElement} */ ($(id));

/** @param {string} message @param {boolean} [error] */
function status(message, error = false) {
  const el = $('status');
  el.textContent = message;
  el.classList.toggle('error', error);
}

/**
 * Calls the admin API of this origin with the in-memory token. A 401 means the token expired or was
 * revoked: forget it and ask to sign in again.
 * @param {string} method @param {string} path @param {unknown} [body]
 * @returns {Promise<any>}
 */
async function api(method, path, body) {
  /** @type {Record<string, string>} */
  const headers = {};
  if (signedIn) headers.authorization = `Bearer ${signedIn.token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: 'omit',
    cache: 'no-store',
  });
  const text = await res.text();
  /** @type {any} */
  const json = text ? JSON.parse(text) : null;
  if (!res.ok) {
    const error = new ApiError(res.status, json?.error ?? 'error', json?.error_description ?? res.statusText);
    if (res.status === 401 && signedIn && path !== '/admin/console/login') {
      forget();
      error.message = 'Your console session ended (expired or revoked); sign in again.';
    }
    throw error;
  }
  return json;
}

function forget() {
  signedIn = null;
  shown = null;
  render();
}

/** @param {string | null} iso */
function when(iso) {
  return iso ? iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z') : '—';
}

/**
 * A table row of text cells; a cell given as [text, className] gets that class.
 * @param {Array<string | [string, string]>} cells
 */
function row(cells) {
  const tr = document.createElement('tr');
  for (const cell of cells) {
    const td = document.createElement('td');
    const [text, className] = typeof cell === 'string' ? [cell, ''] : cell;
    td.textContent = text;
    if (className) td.className = className;
    tr.append(td);
  }
  return tr;
}

/** @param {HTMLElement} body @param {number} columns @param {string} text */
function emptyRow(body, columns, text) {
  const tr = row([[text, 'empty']]);
  /** @type {HTMLTableCellElement} */ (tr.firstElementChild).colSpan = columns;
  body.replaceChildren(tr);
}

function render() {
  document.body.dataset.state = signedIn ? 'signed-in' : 'signed-out';
  $('signin').hidden = signedIn !== null;
  $('console').hidden = signedIn === null;
  $('whoami').hidden = signedIn === null;
  $('admin-email').textContent = signedIn?.email ?? '';
  const user = $('user');
  user.hidden = shown === null;
  if (!shown) {
    delete user.dataset.userId;
    return;
  }
  user.dataset.userId = shown.id;
  user.dataset.disabled = String(shown.disabled);
  $('user-email').textContent = shown.email;
  $('user-id').textContent = shown.id;
  const state = $('user-status');
  state.textContent = shown.disabled ? 'disabled' : 'active';
  state.className = shown.disabled ? 'state-disabled' : 'state-active';
  $('user-roles').textContent = shown.roles.length > 0 ? shown.roles.join(', ') : '(none)';
  $('user-created').textContent = when(shown.created_at);
  $('user-last-login').textContent = when(shown.last_login_at);
  /** @type {HTMLButtonElement} */ ($('disable')).disabled = shown.disabled;
  /** @type {HTMLButtonElement} */ ($('enable')).disabled = !shown.disabled;
}

/** Shows a user with their sessions and recent audit events. @param {User} user */
async function show(user) {
  shown = user;
  input('roles').value = user.roles.join(', ');
  input('roles-revoke').checked = false;
  render();
  await Promise.all([loadSessions(user.id), loadAudit(user.id)]);
}

/** @param {string} userId */
async function loadSessions(userId) {
  /** @type {Session[]} */
  const sessions = await api('GET', `/admin/users/${encodeURIComponent(userId)}/sessions`);
  if (shown?.id !== userId) return;
  const body = $('sessions');
  $('session-count').textContent = String(sessions.length);
  if (sessions.length === 0) return emptyRow(body, 7, 'no active sessions');
  body.replaceChildren(
    ...sessions.map((s) => {
      const tr = row([
        [s.id, 'sid'],
        [s.user_agent ?? '—', 'agent'],
        s.ip ?? '—',
        when(s.created_at),
        when(s.last_used_at),
        s.channel === 'cookie' ? 'browser' : 'native',
      ]);
      tr.dataset.sessionId = s.id;
      const agent = /** @type {HTMLElement} */ (tr.children[1]);
      agent.title = s.user_agent ?? '';
      const td = document.createElement('td');
      const revoke = document.createElement('button');
      revoke.type = 'button';
      revoke.className = 'link revoke';
      revoke.textContent = 'revoke';
      revoke.addEventListener('click', () =>
        run(async () => {
          await api('DELETE', `/admin/users/${encodeURIComponent(userId)}/sessions/${encodeURIComponent(s.id)}`);
          await refresh();
          return `Session ${s.id} revoked.`;
        }),
      );
      td.append(revoke);
      tr.append(td);
      return tr;
    }),
  );
}

/** @param {string} userId */
async function loadAudit(userId) {
  /** @type {{ entries: AuditEntry[] }} */
  const page = await api('GET', `/admin/audit?user=${encodeURIComponent(userId)}&limit=20`);
  if (shown?.id !== userId) return;
  const body = $('audit');
  if (page.entries.length === 0) return emptyRow(body, 5, 'no events');
  body.replaceChildren(
    ...page.entries.map((e) => {
      const tr = row([when(e.time), e.type, e.actor, e.ip ?? '—', [JSON.stringify(e.details), 'details']]);
      tr.dataset.type = e.type;
      return tr;
    }),
  );
}

/** Reloads the user on display after an action. */
async function refresh() {
  if (!shown) return;
  await show(await api('GET', `/admin/users/${encodeURIComponent(shown.id)}`));
}

/** Runs an action, reporting its outcome in the status line. @param {() => Promise<string | void>} action */
async function run(action) {
  try {
    const message = await action();
    status(message ?? '');
  } catch (err) {
    status(err instanceof ApiError ? `${err.message}${err.code === 'error' ? '' : ` (${err.code})`}` : String(err), true);
  }
}

/** @param {string} id @param {() => Promise<string | void>} action */
function onSubmit(id, action) {
  $(id).addEventListener('submit', (event) => {
    event.preventDefault();
    void run(action);
  });
}

/** @param {string} id @param {() => Promise<string | void>} action */
function onClick(id, action) {
  $(id).addEventListener('click', () => void run(action));
}

onSubmit('signin-form', async () => {
  const email = input('email').value;
  /** @type {{ access_token: string }} */
  const answer = await api('POST', '/admin/console/login', { email, password: input('password').value });
  input('password').value = '';
  signedIn = { token: answer.access_token, email };
  render();
  input('query').focus();
  return 'Signed in.';
});

onClick('signout', async () => {
  try {
    await api('POST', '/admin/console/logout');
  } finally {
    forget();
  }
  return 'Signed out.';
});

onSubmit('find-form', async () => {
  const query = input('query').value.trim();
  if (query.includes('@')) {
    /** @type {{ users: User[] }} */
    const found = await api('GET', `/admin/users?email=${encodeURIComponent(query)}`);
    const user = found.users[0];
    if (!user) {
      shown = null;
      render();
      return `No user with the e-mail ${query}.`;
    }
    await show(user);
  } else {
    await show(await api('GET', `/admin/users/${encodeURIComponent(query)}`));
  }
  return '';
});

onClick('disable', async () => {
  if (!shown) return;
  await api('POST', `/admin/users/${encodeURIComponent(shown.id)}/disable`);
  await refresh();
  return 'Account disabled: every session and access token of the user is revoked.';
});

onClick('enable', async () => {
  if (!shown) return;
  await api('POST', `/admin/users/${encodeURIComponent(shown.id)}/enable`);
  await refresh();
  return 'Account enabled.';
});

onClick('revoke-all', async () => {
  if (!shown) return;
  await api('DELETE', `/admin/users/${encodeURIComponent(shown.id)}/sessions`);
  await refresh();
  return 'Every session of the user is revoked.';
});

onSubmit('roles-form', async () => {
  if (!shown) return;
  const roles = input('roles')
    .value.split(',')
    .map((r) => r.trim())
    .filter((r) => r !== '');
  await api('PUT', `/admin/users/${encodeURIComponent(shown.id)}/roles`, { roles, revoke: input('roles-revoke').checked });
  await refresh();
  return 'Roles saved.';
});

render();
