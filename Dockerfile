# The devs-iot server in a small image. Build and run:
#   docker build -t devs-iot .
#   docker run -d --name devs-iot -p 8123:8123 devs-iot
#   docker run -d -p 8123:8123 -v /etc/devs-iot:/etc/devs-iot:ro -e DEVS_IOT_KEYS=/etc/devs-iot/keys.txt devs-iot
#   docker run -d -p 8123:8123 -v devs-iot-state:/var/lib/devs-iot -e DEVS_IOT_STATE=/var/lib/devs-iot/state devs-iot
# The server runs as uid 1000 (user node): a mounted key file must be readable by it.
# /var/lib/devs-iot is the one folder it writes (--state, --ota-images): a volume.
# Settings are DEVS_IOT_* variables (docs/settings.md). `docker kill -s HUP`
# reloads the key file; `docker stop` closes every link and exits 0.

# Build: the whole project (tsc and the DeviceScript images), packed as users get it.
FROM node:20-bookworm-slim AS build
WORKDIR /src
ENV NO_UPDATE_NOTIFIER=1
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY . .
RUN npm run build && mkdir /pkg && npm pack --ignore-scripts --pack-destination /pkg

# Run: the packed package and its runtime dependencies only, as an unprivileged user.
FROM node:20-alpine
ENV NODE_ENV=production NO_UPDATE_NOTIFIER=1 DEVS_IOT_HOST=0.0.0.0 DEVS_IOT_PORT=8123
WORKDIR /opt/devs-iot
COPY --from=build /pkg/ /tmp/pkg/
RUN npm install --omit=dev --no-audit --no-fund /tmp/pkg/devs-iot-*.tgz \
    && rm -rf /tmp/pkg /root/.npm \
    && ln -s /opt/devs-iot/node_modules/.bin/devs-iot /usr/local/bin/devs-iot \
    && mkdir -p /var/lib/devs-iot && chown node:node /var/lib/devs-iot
VOLUME /var/lib/devs-iot
USER node
EXPOSE 8123
# Healthy while the server accepts TCP connections (a connect and a close,
# which the server does not count as an offence).
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD node -e "require('net').connect(+process.env.DEVS_IOT_PORT, '127.0.0.1').on('connect', function () { this.end(); process.exit(0) }).on('error', () => process.exit(1))"
STOPSIGNAL SIGTERM
ENTRYPOINT ["devs-iot"]
CMD ["server"]
