# The two commands the README promises: `make run` and `make test`.
# GO is scripts/go: the go on this machine if it can build the module (a go
# >= 1.21 fetches go.mod's toolchain itself unless GOTOOLCHAIN=local), else
# go.mod's toolchain, downloaded once into ~/.cache/orders-go with the older go.
GO      ?= ./scripts/go
PKGS    := ./...

.PHONY: run run-fresh run-secure chaos test test-browser schemas-check schemas-register bench-limit bench-floor check build migrate bench bench-go fuzz clean

## run: start the no-Docker playground (embedded Kafka + Schema Registry, order-api on :8080);
##      its broker data, schemas and any PostgreSQL it started are kept in .playground/ across restarts
run: bin/playground
	bin/playground

## run-fresh: the playground from nothing: drops its two databases and .playground/ first
run-fresh: bin/playground
	bin/playground -fresh

# bin/playground is rebuilt every time (go build is quick when nothing changed), static as
# make build makes it; the first build downloads the modules and compiles everything, which
# takes about a minute.
.PHONY: bin/playground
bin/playground:
	@echo "==> compiling the playground (the first build downloads modules and takes about a minute)"
	@CGO_ENABLED=0 $(GO) build -trimpath -o bin/playground ./cmd/playground

## run-secure: the playground secured as in production: Kafka SASL_SSL with SCRAM-SHA-512, the
##             registry over HTTPS with basic auth, JWT bearer tokens on both APIs; the banner
##             prints the variables, the files (CA, client.properties, token) and a working curl
run-secure: bin/playground
	bin/playground -secure

## test: formatting, vet and every test with the race detector (needs PostgreSQL and gcc, see README).
##       Packages' tests wait on PostgreSQL and the embedded brokers more than they compute, so
##       TEST_PARALLEL packages (default 4) run at once whatever the core count.
TEST_PARALLEL ?= 4
test: check
	$(GO) test -race -count=1 -p $(TEST_PARALLEL) -timeout 20m $(PKGS)

## test-browser: the playground's inspector page in headless chromium (Debian's chromium package;
##               CHROMIUM names another binary): a playground, an order and a poison message, then
##               the DOM of the page and of the order's trail. Not part of make test
test-browser:
	$(GO) test -race -count=1 -tags browser -run '^TestInspectorInABrowser$$' -timeout 5m ./cmd/playground

## check: gofmt and go vet, failing on any finding
check:
	@unformatted="$$("$$($(GO) env GOROOT)/bin/gofmt" -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))"; \
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
BENCH_ARGS ?=
bench:
	$(GO) run ./cmd/loadgen $(BENCH_ARGS)

## bench-limit: against the running playground, a closed-loop place-only load through HTTP, then
##              pgbench running order-api's place statement on a scratch database, back to back,
##              and their ratio (needs pgbench). Override with BENCH_LIMIT_ARGS (e.g. -json)
BENCH_LIMIT_ARGS ?=
bench-limit:
	$(GO) run ./cmd/loadgen -limit $(BENCH_LIMIT_ARGS)

## bench-floor: what the stack costs before the services' own work: the CPU per request of a bare
##              net/http server decoding a place-order body, with one pgx INSERT per request and
##              without it, open loop at 1,000 requests/s (order-api's rate under make bench).
##              Needs PostgreSQL (-pg-url), not the playground. Override with BENCH_FLOOR_ARGS
BENCH_FLOOR_ARGS ?=
bench-floor:
	$(GO) run ./cmd/loadgen -floor $(BENCH_FLOOR_ARGS)

## chaos: the fault-injection suite (docs/reliability.md): each scenario on a fresh stack of the real
##        binaries (2 order-api, 2 order-consumer, broker and registry as processes, a PostgreSQL
##        cluster of its own, toxiproxy between them) under load while faults are injected, then a
##        checker; prints one table, exits 1 on any violation. Needs initdb and pg_ctl (PostgreSQL's
##        server package). CHAOS_ARGS: -scenario NAME[,NAME] -seed N -duration 20s -rate 25 -keep -list
CHAOS_ARGS ?=
chaos:
	@$(GO) build -o bin/ ./cmd/order-api ./cmd/order-consumer ./cmd/chaos
	bin/chaos $(CHAOS_ARGS)

## fuzz: run each fuzz target for FUZZTIME (make test runs only their seed corpora).
##       A failing input is saved under the package's testdata/fuzz/ and replayed by make test.
FUZZTIME ?= 1m
FUZZ_TARGETS := ./internal/producer/httpapi:FuzzRequests ./internal/event/eventcodec:FuzzDecodeEvent ./internal/consumer/deadletter:FuzzDeadLetterHeaders ./internal/consumer/orderview:FuzzAppendItems ./internal/producer/outbox:FuzzKafkaHeaders
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
