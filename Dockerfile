# Build: compile TypeScript once, then ship only the runtime dependencies and the compiled code.
FROM node:22-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build && npm prune --omit=dev

FROM node:22-bookworm-slim
# argon2 holds up to LATCHKEY_HASH_CONCURRENCY (4) libuv threads; the rest sign tokens.
ENV NODE_ENV=production HOST=0.0.0.0 PORT=3000 LATCHKEY_KEYS_DIR=/keys UV_THREADPOOL_SIZE=8
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
USER node
EXPOSE 3000 3001 9464
CMD ["node", "dist/server.js"]
