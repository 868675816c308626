# syntax=docker/dockerfile:1
#
# mps-injector container image. Build for both architectures with
#   docker buildx build --platform linux/amd64,linux/arm64 \
#     --build-arg VERSION=$(node -p "require('./package.json').version") \
#     --build-arg REVISION=$(git rev-parse HEAD) -t ghcr.io/mps-injector/mps-injector:<version> --push .
# (docs/release.md has the whole procedure; docs/adr/0008-packaging.md the reasons.)

# ---- build: install everything, compile TypeScript, drop dev dependencies -------------------
# Runs on the builder's own platform for every target: the production dependencies are plain
# JavaScript (no install scripts, no native addons; e2e/packedInstall.e2e.test.ts checks the
# lock file for that), so dist/ and node_modules/ are the same on amd64 and arm64.
FROM --platform=$BUILDPLATFORM node:20.20.2-bookworm-slim@sha256:2cf067cfed83d5ea958367df9f966191a942351a2df77d6f0193e162b5febfc0 AS build
WORKDIR /src
ENV npm_config_update_notifier=false \
    npm_config_fund=false \
    npm_config_audit=false
COPY package.json package-lock.json ./
RUN --mount=type=cache,target=/root/.npm npm ci --no-audit --no-fund
# .dockerignore keeps tests, test data, e2e, benchmarks, charts and local build output out.
COPY . .
RUN npm run build && npm prune --omit=dev

# ---- runtime: distroless Node 20, no shell, no package manager, non-root ------------------
FROM gcr.io/distroless/nodejs20-debian12:nonroot@sha256:2cd820156cf039c8b54ae2d2a97e424b6729070714de8707a6b79f20d56f6a9a AS runtime
ARG VERSION=0.0.0-dev
ARG REVISION=unknown
LABEL org.opencontainers.image.title="mps-injector" \
      org.opencontainers.image.description="Kubernetes mutating admission webhook that places inference pods on NVIDIA MPS slots from live DCGM metrics and injects the MPS client configuration." \
      org.opencontainers.image.source="https://github.com/mps-injector/mps-injector" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV NODE_ENV=production
WORKDIR /app
# Exactly what `npm pack` ships (package.json "files") plus the manifest and the production
# dependencies; e2e/packedInstall.e2e.test.ts fails if these lines and "files" disagree.
COPY --from=build /src/package.json ./package.json
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY --from=build /src/examples ./examples
COPY --from=build /src/simulate/traces ./simulate/traces
COPY --from=build /src/simulate/clusters ./simulate/clusters
COPY --from=build /src/README.md ./README.md
COPY --from=build /src/CHANGELOG.md ./CHANGELOG.md
USER 65532:65532
EXPOSE 8443
ENTRYPOINT ["/nodejs/bin/node", "/app/dist/cli/main.js"]
CMD ["serve", "--config", "/etc/mps-injector/config.yaml"]
