/**
 * The example app's page: wires the DOM to LatchkeyClient. Server data is written with textContent only,
 * never as HTML (a session's user agent is whatever the client sent): an injected script could use the
 * access token in memory for as long as the page lives.
 */
import { LatchkeyClient, LatchkeyError, type SessionInfo } from './latchkey-client.js';

interface AppConfig {
  /** latchkey's URL, base path included. */
  latchkeyUrl: string;
  /** The resource server's URL. */
  apiUrl: string;
}

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;

const config = (await (await fetch('/config.json')).json()) as AppConfig;
const client = new LatchkeyClient(config.latchkeyUrl);

$('page-origin').textContent = location.origin;
$('latchkey-url').textContent = config.latchkeyUrl;
$('api-url').textContent = config.apiUrl;

function status(message: string, error = false): void {
  const el = $('status');
  el.textContent = message;
  el.classList.toggle('error', error);
}

function describe(err: unknown): string {
  if (err instanceof LatchkeyError) return `${err.code}: ${err.message}`;
  return err instanceof Error ? err.message : String(err);
}

/** Runs a button's action, reporting failures in the status line. */
function action(id: string, run: () => Promise<string | void>): void {
  $(id).addEventListener('click', async (event) => {
    event.preventDefault();
    try {
      const message = await run();
      if (message) status(message);
    } catch (err) {
      status(describe(err), true);
    }
  });
}

let shownSession: string | undefined;

function render(): void {
  document.body.dataset.state = client.signedIn ? 'signed-in' : 'signed-out';
  $('signed-in').hidden = !client.signedIn;
  $('signed-out').hidden = client.signedIn;
  $('session-id').textContent = client.sessionId ?? '';
  $('refresh-count').textContent = String(client.refreshes);
  tick();
  if (client.signedIn && client.sessionId !== shownSession) void loadSessions();
  shownSession = client.sessionId;
}

function tick(): void {
  const expiresAt = client.expiresAt;
  $('expires-in').textContent = expiresAt === undefined ? '' : `${Math.max(0, Math.round((expiresAt - Date.now()) / 1000))} s`;
}
setInterval(tick, 1000);

async function loadSessions(): Promise<void> {
  let sessions: SessionInfo[];
  try {
    sessions = await client.sessions();
  } catch (err) {
    status(describe(err), true);
    return;
  }
  const rows = sessions.map((s) => {
    const row = document.createElement('tr');
    row.dataset.sessionId = s.id;
    if (s.current) row.classList.add('current');
    const lastUsed = new Date(s.last_used_at).toLocaleTimeString();
    for (const [text, className] of [[s.id.slice(0, 10) + '…', ''], [s.user_agent ?? '', 'agent'], [s.ip ?? '', ''], [lastUsed, '']]) {
      const cell = document.createElement('td');
      cell.textContent = text!;
      if (className) cell.className = className;
      row.append(cell);
    }
    const revoke = document.createElement('button');
    revoke.type = 'button';
    revoke.className = 'link revoke';
    revoke.textContent = 'Revoke';
    revoke.addEventListener('click', async () => {
      try {
        await client.revokeSession(s.id);
        status(`Session ${s.id.slice(0, 10)}… revoked.`);
        if (client.signedIn) await loadSessions();
      } catch (err) {
        status(describe(err), true);
      }
    });
    const cell = document.createElement('td');
    cell.append(revoke);
    row.append(cell);
    return row;
  });
  $('sessions').replaceChildren(...rows);
}

const credentials = () => [$<HTMLInputElement>('email').value, $<HTMLInputElement>('password').value] as const;

$('credentials').addEventListener('submit', async (event) => {
  event.preventDefault();
  try {
    await client.login(...credentials());
    status('Logged in.');
  } catch (err) {
    status(describe(err), true);
  }
});
action('register', async () => {
  const form = $<HTMLFormElement>('credentials');
  if (!form.reportValidity()) return;
  await client.register(...credentials());
  return 'Registered: now log in.';
});
action('call-api', async () => {
  const res = await client.fetch(`${config.apiUrl}/me`);
  $('api-result').textContent = `${res.status} ${JSON.stringify(await res.json(), null, 2)}`;
  return res.ok ? 'The API accepted the access token.' : client.signedIn ? 'The API refused the call.' : 'Your session has ended: log in again.';
});
action('refresh', async () => ((await client.refresh()) ? 'Refreshed.' : 'Your session has ended: log in again.'));
action('load-sessions', async () => loadSessions());
action('logout', async () => {
  await client.logout();
  return 'Logged out.';
});
action('logout-all', async () => {
  await client.logoutEverywhere();
  return 'Logged out everywhere.';
});

client.onChange(render);
try {
  status((await client.restore()) ? 'Welcome back: signed in through the refresh cookie.' : '');
} catch (err) {
  status(describe(err), true);
}
render();
