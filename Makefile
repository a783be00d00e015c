# The two commands the README promises: `make run` and `make test`.
GO      ?= go
PKGS    := ./...

.PHONY: run run-secure test schemas-check schemas-register bench-limit check build migrate bench bench-go fuzz clean

## run: start the no-Docker playground (embedded Kafka + Schema Registry, order-api on :8080)
run:
	$(GO) run ./cmd/playground

## run-secure: the playground secured as in production: Kafka SASL_SSL with SCRAM-SHA-512, the
##             registry over HTTPS with basic auth, JWT bearer tokens on both APIs; the banner
##             prints the variables, the files (CA, client.properties, token) and a working curl
run-secure:
	$(GO) run ./cmd/playground -secure

## test: formatting, vet and every test with the race detector (needs PostgreSQL, see README).
##       Packages' tests wait on PostgreSQL and the embedded brokers more than they compute, so
##       TEST_PARALLEL packages (default 4) run at once whatever the core count.
TEST_PARALLEL ?= 4
test: check
	$(GO) test -race -count=1 -p $(TEST_PARALLEL) -timeout 20m $(PKGS)

## check: gofmt and go vet, failing on any finding
check:
	@unformatted="$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))"; \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet $(PKGS)

## build: static binaries of the services into bin/
build:
	CGO_ENABLED=0 $(GO) build -trimpath -o bin/ ./cmd/...

## migrate: create and migrate order-api's database at DATABASE_URL
migrate:
	$(GO) run ./cmd/order-api migrate

## schemas-check: the schema gate against SCHEMA_REGISTRY_URL (and its auth variables): each version
##                of schemas/ in the registry, and whether the newest is compatible (exit 1 if not)
schemas-check:
	$(GO) run ./cmd/order-api schemas check

## schemas-register: set the subject's level and register the versions it lacks, oldest first
schemas-register:
	$(GO) run ./cmd/order-api schemas register

## bench: load the running playground (`make run` in another terminal) at 500 orders/s for 60s
##        and print orders/s, HTTP and end-to-end latency percentiles and each service's peak RSS.
##        Override with BENCH_ARGS, e.g. make bench BENCH_ARGS='-rate 250 -duration 30s -json'
BENCH_ARGS ?= -rate 500 -concurrency 64 -duration 60s
bench:
	$(GO) run ./cmd/loadgen $(BENCH_ARGS)

## bench-limit: against the running playground, a closed-loop place-only load through HTTP, then
##              pgbench running order-api's place statement on a scratch database, back to back,
##              and their ratio (needs pgbench). Override with BENCH_LIMIT_ARGS (e.g. -json)
BENCH_LIMIT_ARGS ?= -concurrency 32 -duration 20s
bench-limit:
	$(GO) run ./cmd/loadgen -limit $(BENCH_LIMIT_ARGS)

## fuzz: run each fuzz target for FUZZTIME (make test runs only their seed corpora).
##       A failing input is saved under the package's testdata/fuzz/ and replayed by make test.
FUZZTIME ?= 1m
FUZZ_TARGETS := ./internal/producer/httpapi:FuzzRequests ./internal/event/eventcodec:FuzzDecodeEvent ./internal/consumer/deadletter:FuzzDeadLetterHeaders
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "==> $$name ($$pkg) for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$$name$$" -fuzztime $(FUZZTIME) $$pkg; \
	done

## bench-go: the go test benchmarks (codec, relay drain, HTTP place order)
bench-go:
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)

clean:
	rm -rf bin/
