# Berth registry image: build with the full toolchain, run on a slim Node 24 LTS as an unprivileged user. The same
# image runs `berth serve` (the default command), which re-executes itself with its V8 flags, and `berth operator`.
# BASE is any Debian-like image with Node 24 and npm on PATH: pin it by digest (node:24-bookworm-slim@sha256:...), or
# name a local one (scripts/build-image.sh builds localhost/berth-base:bookworm-node24 where no registry is reachable).
ARG BASE=node:24-bookworm-slim

FROM ${BASE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
# --ignore-scripts: the image's own Node 24 runs everything; the `node` devDependency (a Node for npm scripts on
# machines with an older one) is not needed here.
RUN npm ci --ignore-scripts
COPY tsconfig.json ./
COPY src ./src
RUN node node_modules/typescript/bin/tsc -p tsconfig.json && npm prune --omit=dev --ignore-scripts

FROM ${BASE}
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist/src ./dist/src
COPY package.json ./
COPY config/docker.yml /etc/berth/config.yml
RUN mkdir -p /var/lib/registry && chown 65532:65532 /var/lib/registry
USER 65532:65532
VOLUME ["/var/lib/registry"]
EXPOSE 5000 5001
ENTRYPOINT ["node", "dist/src/cli/main.js"]
CMD ["serve", "--config", "/etc/berth/config.yml"]
