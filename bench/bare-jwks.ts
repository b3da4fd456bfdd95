/** The baseline for JWKS: a bare Fastify route serving the same bytes, nothing else. */
import Fastify from 'fastify';

const body = process.argv[2] ?? '{"keys":[]}';
const app = Fastify();
app.get('/.well-known/jwks.json', (_request, reply) => {
  void reply.type('application/json').header('cache-control', 'public, max-age=300').send(body);
});
const address = await app.listen({ host: '127.0.0.1', port: 0 });
process.stdout.write(`listening on ${address}\n`);
