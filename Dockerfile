# syntax=docker/dockerfile:1
# wzp-relay: multi-stage build, small non-root runtime image.

# ── build: install everything, compile TypeScript to dist/ ───────────────────
FROM node:24-bookworm-slim AS build
# python3, make and g++ build the optional sendmmsg add-on (native/) during npm ci,
# offline against the image's own Node headers; without them the relay runs on dgram.
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 make g++ \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY package.json package-lock.json ./
COPY scripts/build-native.mjs ./scripts/
COPY native/binding.gyp native/wzp_udp.c ./native/
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build && npm prune --omit=dev

# ── runtime: production dependencies and compiled code only ─────────────────
FROM node:24-bookworm-slim AS runtime
ENV NODE_ENV=production \
    WZP_DATA_DIR=/var/lib/wzp
WORKDIR /app
COPY --from=build /src/package.json ./
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY --from=build /src/native ./native
COPY protocol ./protocol
RUN mkdir -p /var/lib/wzp && chown node:node /var/lib/wzp
USER node
# 4433/udp media, 4434/tcp signalling (WebSocket), 9090/tcp metrics and health
EXPOSE 4433/udp 4434/tcp 9090/tcp
VOLUME ["/var/lib/wzp"]
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:9090/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "dist/cli/wzp.js"]
CMD ["relay"]
