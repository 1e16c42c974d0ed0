# azhexgate gateway image (management API + public ingress). Built on the official Bun image.
# No Docker engine on the development machines: test/image.test.ts rebuilds this filesystem on
# the host the way the steps below do (production install from the lockfile, src/ copied) and
# runs it as a non-root user with the ENV below, checking boot, HEALTHCHECK and imports.
#
#   docker build -t azhexgate .
#   docker run -p 8080:8080 -v azhexgate-data:/data -e AZHEXGATE_API_KEYS=... -e AZHEXGATE_RELAY_NAMESPACE=... azhexgate
#
# On Azure (infra/, docs/deploy.md) App Service sets AZHEXGATE_REGISTRY to the shared Redis, so
# the SQLite default below only serves a single `docker run` with a volume on /data.

FROM oven/bun:1.4.4-slim AS deps
WORKDIR /app
COPY package.json bun.lock ./
RUN bun install --frozen-lockfile --production

FROM oven/bun:1.4.4-slim
WORKDIR /app
ENV NODE_ENV=production \
    AZHEXGATE_HOST=0.0.0.0 \
    AZHEXGATE_PORT=8080 \
    AZHEXGATE_LOG_FORMAT=json \
    AZHEXGATE_REGISTRY=sqlite:/data/registry.db
COPY --from=deps /app/node_modules ./node_modules
COPY package.json ./
COPY src ./src
RUN mkdir -p /data && chown bun:bun /data
VOLUME /data
# the image's non-root user
USER bun
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
  CMD ["bun", "-e", "fetch('http://127.0.0.1:8080/healthz',{headers:{host:'localhost'}}).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# SIGTERM: stop accepting, drain in-flight streams (AZHEXGATE_DRAIN_SECONDS, default 30), exit 0
STOPSIGNAL SIGTERM
ENTRYPOINT ["bun", "--max-http-header-size=262144", "src/cli.ts"]
CMD ["gateway"]
