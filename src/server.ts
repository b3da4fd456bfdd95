import closeWithGrace from 'close-with-grace';
import { buildApp, StartupError } from './app.js';
import { ConfigError, loadConfig } from './config.js';

/** Entry point: the only place that reads process.env (through loadConfig) and exits the process. */
async function main(): Promise<void> {
  const config = loadConfig(process.env);
  const app = await buildApp(config);
  closeWithGrace({ delay: 10_000 }, async ({ signal, err }) => {
    if (err) app.log.error({ err }, 'shutting down after an error');
    else app.log.info({ signal }, 'shutting down');
    await app.close();
  });
  await app.listen({ host: config.host, port: config.port });
  app.log.info(
    { issuer: config.issuer, store: app.latchkey.store.kind, keys: app.latchkey.keys.size, env: config.env },
    'latchkey ready',
  );
}

main().catch((err: unknown) => {
  if (err instanceof ConfigError || err instanceof StartupError) {
    process.stderr.write(`latchkey: ${err.message}\n`);
  } else {
    process.stderr.write(`latchkey: failed to start: ${(err as Error).stack ?? String(err)}\n`);
  }
  process.exit(1);
});
