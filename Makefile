# tabletsim: every target creates .venv and installs what it needs on its own.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
RUN_DIR ?= .run
BES ?= 3
# FES=3 (any odd number): as many etcd members hold the FE journal and the FEs elect a leader
FES ?= 1
FE_PORT ?= 9020
BE_PORT ?= 9060
BROKER_PORT ?= 9092
# HTTP: the FE's web console, /metrics and Stream Load (StarRocks' http_port); BE i on BE_HTTP_PORT + i
HTTP_PORT ?= 8030
BE_HTTP_PORT ?= 8040
# SQL: the FE's MySQL-protocol port (StarRocks' query_port); FE i on QUERY_PORT + i
QUERY_PORT ?= 9030
CLUSTER := $(PY) -m deploy.cluster --run-dir $(RUN_DIR)

.PHONY: etcd browser mysql-client sql venv proto test unit integration lint demo bench bench-failover soak many-loads batch-memory cluster status stop kill-be start-be kill-fe start-fe logs clean chaos

venv: $(STAMP)

# etcd (Debian's etcd-server 3.4) for FE high availability: installed only where a target needs it
etcd:
	@command -v etcd >/dev/null 2>&1 || { echo "installing etcd-server with apt-get (FE high availability)"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server) > /tmp/tabletsim-etcd-install.log 2>&1 \
		|| { cat /tmp/tabletsim-etcd-install.log; echo "could not install etcd-server: it is needed for FES>1 and the tests"; exit 1; }; }

# Debian's chromium for the web console's browser test (tests/integration/test_console_browser.py):
# Playwright drives it through executable_path, it cannot download its own browsers here
CHROMIUM := /usr/bin/chromium
browser:
	@test -x $(CHROMIUM) || { echo "installing chromium with apt-get (the web console's browser test)"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) > /tmp/tabletsim-chromium-install.log 2>&1 \
		|| { cat /tmp/tabletsim-chromium-install.log; echo "could not install chromium: the web console's browser test needs $(CHROMIUM)"; exit 1; }; }

# Debian's mariadb client (the `mysql` command) for the SQL door: make sql, and the mysql client run of
# tests/integration/test_sql_server.py
mysql-client:
	@command -v mysql >/dev/null 2>&1 || { echo "installing mariadb-client with apt-get (the mysql client: make sql, the SQL tests)"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mariadb-client) > /tmp/tabletsim-mysql-install.log 2>&1 \
		|| { cat /tmp/tabletsim-mysql-install.log; echo "could not install mariadb-client: make sql and the SQL door's client test need mysql"; exit 1; }; }

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "installing tabletsim and its dependencies into $(VENV) (log: $(VENV)/install.log)"
	@$(PY) -m pip install --upgrade pip > $(VENV)/install.log 2>&1 || (cat $(VENV)/install.log; exit 1)
	@$(PY) -m pip install -e '.[dev]' >> $(VENV)/install.log 2>&1 || (cat $(VENV)/install.log; exit 1)
	@touch $(STAMP)

# Generated code lives in common/gen and is never edited by hand.
proto: $(STAMP)
	@rm -rf common/gen/tabletsim
	@mkdir -p common/gen
	@PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(PY) -m grpc_tools.protoc -Iproto --python_out=common/gen --grpc_python_out=common/gen \
		--mypy_out=common/gen --mypy_grpc_out=common/gen proto/tabletsim/v1/*.proto
	@# protoc writes absolute imports of the proto package; make them point into common.gen
	@sed -i -E 's/^from tabletsim\.v1 import/from common.gen.tabletsim.v1 import/' \
		common/gen/tabletsim/v1/*.py common/gen/tabletsim/v1/*.pyi
	@sed -i -E 's/^import tabletsim\.v1\.([a-z_]+)$$/import common.gen.tabletsim.v1.\1/' common/gen/tabletsim/v1/*.pyi
	@touch common/gen/__init__.py common/gen/tabletsim/__init__.py common/gen/tabletsim/v1/__init__.py
	@echo "generated common/gen/tabletsim/v1"

demo: $(STAMP) $(if $(filter-out 1,$(FES)),etcd)
	@$(PY) -m deploy.demo --run-dir $(RUN_DIR) --fes $(FES) --fe-port $(FE_PORT) --be-port $(BE_PORT) --broker-port $(BROKER_PORT) \
		--http-port $(HTTP_PORT) --be-http-port $(BE_HTTP_PORT) --query-port $(QUERY_PORT)

# Seeded faults under load and a checker (deploy/chaos.py); its own cluster on free ports in a temp dir.
SEED ?= 1
DURATION ?= 300
CHAOS_BES ?= 4
# KINDS=be_kill,fe_kill narrows the fault kinds (default: every kind)
KINDS ?=
chaos: $(STAMP) $(if $(filter-out 1,$(FES)),etcd)
	$(PY) -m deploy.chaos --seed $(SEED) --duration $(DURATION) --fes $(FES) --bes $(if $(filter command line,$(origin BES)),$(BES),$(CHAOS_BES)) --kinds "$(KINDS)"

bench: $(STAMP) etcd
	$(PY) -m bench.routine_load
	$(PY) -m bench.stream_load
	$(PY) -m bench.query
	$(PY) -m bench.repair
	$(PY) -m bench.txn_rate
	$(PY) -m bench.group_commit
	$(PY) -m bench.http_load
	$(PY) bench/sched_scale.py
	$(PY) -m bench.failover

# FE failover (KILLS SIGKILLs of the leader FE, target <= 5 s each) and HA / single-FE commit rate
# (target >= 0.5), on clusters of its own (bench/failover.py); KILLS=3 for a quick try
KILLS ?= 20
bench-failover: $(STAMP) etcd
	$(PY) -m bench.failover --kills $(KILLS)

# A long steady run on its own cluster (bench/soak.py): routine load at RATE rows/s plus one-row
# stream loads one after another; one line every INTERVAL s; PASS/FAIL against the targets.
# DURATION defaults to 600 here (300 is chaos's default); e.g. make soak DURATION=120 INTERVAL=20
INTERVAL ?= 60
RATE ?= 1000
soak: $(STAMP)
	$(PY) -m bench.soak --duration $(if $(filter command line environment,$(origin DURATION)),$(DURATION),600) \
		--interval $(INTERVAL) --rate $(RATE)

# LOADS one-row stream loads one after another on a fresh cluster (bench/many_loads.py)
LOADS ?= 5000
many-loads: $(STAMP)
	$(PY) -m bench.many_loads --loads $(LOADS)

# Peak BE memory while one routine load task loads a 100 MB Kafka batch (bench/batch_memory.py)
batch-memory: $(STAMP)
	$(PY) -m bench.batch_memory

test: $(STAMP) etcd browser mysql-client
	$(PY) -m pytest -q -p no:cacheprovider

unit: $(STAMP) etcd
	$(PY) -m pytest -q tests/unit

integration: $(STAMP) etcd browser mysql-client
	$(PY) -m pytest -q tests/integration

lint: $(STAMP)
	$(VENV)/bin/ruff check common fe be deploy tests bench

# FE_CONFIG / BE_CONFIG: space-separated NAME=VALUE settings (fe.conf / be.conf names), e.g.
# make cluster BE_CONFIG="tablet_max_versions=200 min_cumulative_compaction_num_singleton_deltas=3"
# DEBUG_POINTS=1 starts every node with --enable-debug-points (DebugService; see README "Debug points")
FE_CONFIG ?=
BE_CONFIG ?=
DEBUG_POINTS ?=
cluster: $(STAMP) $(if $(filter-out 1,$(FES)),etcd)
	@$(CLUSTER) start --bes $(BES) --fes $(FES) --fe-port $(FE_PORT) --be-port $(BE_PORT) --broker-port $(BROKER_PORT) \
		--http-port $(HTTP_PORT) --be-http-port $(BE_HTTP_PORT) --query-port $(QUERY_PORT) \
		$(foreach c,$(FE_CONFIG),--config $(c)) $(foreach c,$(BE_CONFIG),--be-config $(c)) \
		$(if $(filter-out 0 false no,$(DEBUG_POINTS)),--debug-points)

status: $(STAMP)
	@$(CLUSTER) status

# the mysql client on the running cluster's FE (the leader with FES > 1), root with the admin token if any
sql: $(STAMP) mysql-client
	@cmd="$$($(CLUSTER) mysql-command)" && exec $$cmd

stop: $(STAMP)
	@$(CLUSTER) stop

kill-be: $(STAMP)
	@$(CLUSTER) kill-be $(BE)

start-be: $(STAMP)
	@$(CLUSTER) start-be $(BE)

# FE=fe1 names one FE of a FES>1 cluster; kill-fe defaults to the leader, start-fe to every stopped FE
FE ?=
kill-fe: $(STAMP)
	@$(CLUSTER) kill-fe $(FE)

start-fe: $(STAMP)
	@$(CLUSTER) start-fe $(FE)

logs: $(STAMP)
	@$(CLUSTER) logs

clean:
	rm -rf $(VENV) $(RUN_DIR) *.egg-info
