# Build: compile TypeScript once, then ship only the runtime dependencies and the compiled code.
FROM node:22-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
COPY packages/verifier/package.json ./packages/verifier/
RUN npm ci
COPY tsconfig.json tsconfig.build.json ./
COPY packages ./packages
COPY src ./src
RUN npm run build && npm prune --omit=dev

FROM node:22-bookworm-slim
# argon2 holds up to LATCHKEY_HASH_CONCURRENCY (4) libuv threads; the rest sign tokens.
ENV NODE_ENV=production HOST=0.0.0.0 PORT=3000 LATCHKEY_KEYS_DIR=/keys UV_THREADPOOL_SIZE=8
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/packages ./packages
COPY package.json ./
USER node
# 3000: the API. 9464: metrics, for the scraper on an internal network only (never published).
EXPOSE 3000 9464
# Liveness over loopback with Node itself (the slim image has no curl): /healthz answers without the store,
# so a Redis outage shows in /readyz and in 503s, not in restarts that cannot help.
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||3000)+(process.env.LATCHKEY_BASE_PATH||'')+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
CMD ["node", "dist/server.js"]
