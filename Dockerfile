# syntax=docker/dockerfile:1
#
# The bridge image: one static binary, /bridge, on a distroless base with no
# shell, running as an unprivileged user. The same image runs every mode:
# `node` (the default command), `xmtp-node`, `migrate`, `env` and
# `check-config`.
#
#   docker build --build-arg VERSION=$(git describe --tags --always --dirty) \
#     --build-arg COMMIT=$(git rev-parse HEAD) -t xmtpbridge/bridge:dev .
#
# There is no HEALTHCHECK: the image has no shell and no curl to run one.
# The orchestrator probes the node over HTTP instead: /healthz (the process
# answers) and /readyz (Postgres, the XMTP node and the subscription are up),
# as the Kubernetes manifests in deploy/k8s do. deploy/deploytest checks
# this file: two stages, CGO_ENABLED=0, the Makefile's version flags and a
# non-root user in the final stage.

FROM golang:1.26.8-bookworm AS build
WORKDIR /src
ENV CGO_ENABLED=0 GOFLAGS=-buildvcs=false
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG VERSION=dev
ARG COMMIT=unknown
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    go build -trimpath -ldflags "-X main.version=${VERSION} -X main.commit=${COMMIT}" -o /out/bridge ./cmd/bridge

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/bridge /bridge
# 65532 is distroless's "nonroot" user; numeric, so Kubernetes can check
# runAsNonRoot without reading /etc/passwd.
USER 65532:65532
ENV BRIDGE_HTTP_ADDR=0.0.0.0:8080 BRIDGE_LOG_FORMAT=json
# 8080: REST API, /healthz, /readyz, /metrics. 6340: the actor cluster
# (BRIDGE_CLUSTER_PORT). 6330: the automanaged provider's health port
# (BRIDGE_CLUSTER_PROVIDER_PORT). 5555/5556: `bridge xmtp-node`'s HTTP
# gateway and gRPC. 9555: `bridge xmtp-node`'s /healthz, /readyz, /metrics.
EXPOSE 8080 6340 6330 5555 5556 9555
ENTRYPOINT ["/bridge"]
CMD ["node"]
