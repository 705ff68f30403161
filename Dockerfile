# syntax=docker/dockerfile:1
# One image with the three AllSpark binaries: edge (the default entrypoint),
# embedded-nats and push-worker. Static, distroless, non-root.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/ ./cmd/edge ./cmd/embedded-nats ./cmd/push-worker \
 && mkdir -p /empty

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/ /usr/local/bin/
# Owned by the nonroot user so named volumes mounted here are writable.
COPY --from=build --chown=65532:65532 /empty /data
USER 65532:65532
ENV ALLSPARK_DATA_DIR=/data
EXPOSE 8080 4222 6222
ENTRYPOINT ["/usr/local/bin/edge"]
