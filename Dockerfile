# syntax=docker/dockerfile:1

# Build on the build machine's own platform and cross-compile: pure Go
# (CGO_ENABLED=0) needs no target toolchain and gives static binaries that run
# on an image without libc.
FROM --platform=$BUILDPLATFORM golang:1.26-bookworm AS build
WORKDIR /src
# Dependencies first, in their own layer: it is rebuilt only when go.mod or
# go.sum change, not on every source edit.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG TARGETOS TARGETARCH
RUN --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -ldflags='-s -w' -o /out/ ./cmd/order-api ./cmd/order-consumer

# Distroless: no shell, no package manager, nothing to patch but the binaries.
# Health checks use the binaries' own `health` subcommand for that reason.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/order-api /out/order-consumer /usr/local/bin/
# Numeric, so a runtime that cannot resolve user names (Kubernetes
# runAsNonRoot) can still verify it is not root. 65532 is distroless' nonroot.
USER 65532:65532
EXPOSE 8080 8082
# One image for both services; order-consumer overrides the entrypoint.
ENTRYPOINT ["/usr/local/bin/order-api"]
