/**
 * Baselines: for JWKS a bare Fastify route serving the same bytes, for forward auth a bare route answering
 * 200 with the same response headers as latchkey's GET /verify. Nothing else.
 */
import Fastify from 'fastify';

const body = process.argv[2] ?? '{"keys":[]}';
const app = Fastify();
app.get('/.well-known/jwks.json', (_request, reply) => {
  void reply.type('application/json').header('cache-control', 'public, max-age=300').send(body);
});
app.get('/verify', (_request, reply) => {
  void reply
    .header('vary', 'Origin')
    .header('cache-control', 'no-store')
    .header('x-user-id', 'u_0123456789abcdefghij')
    .header('x-user-roles', '')
    .header('x-session-id', 's_0123456789abcdefghij')
    .header('x-revocation-checked', 'true')
    .header('x-client-id', 'latchkey-native')
    .code(200)
    .send();
});
const address = await app.listen({ host: '127.0.0.1', port: 0 });
process.stdout.write(`listening on ${address}\n`);
