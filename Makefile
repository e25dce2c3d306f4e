# The two commands: `make run` and `make test`. Everything else is a helper of those.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
DATA   := .data
WORKSPACE_URL ?= http://127.0.0.1:50053

.PHONY: install sandbox run test lint typecheck unit e2e bench docs clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

sandbox:
	bash scripts/install_sandbox.sh

## Serve on 127.0.0.1:50053 with local workspaces under .data/ (Ctrl-C stops). State is in memory,
## or in Valkey with `make run VALKEY_ADDR=host:port`. A bad setting stops it before Ray starts;
## an application that does not reach RUNNING (Valkey unreachable, a replica that cannot start)
## within RUN_TIMEOUT_S makes it exit non-zero with the reason (scripts/serve_run.py).
RUN_CONFIG    ?= ray_config/local.yaml
RUN_TIMEOUT_S ?= 300
RUN_ENV = WORKSPACE_ROOT=$(CURDIR)/$(DATA)/workspaces ARTIFACT_ROOT=$(CURDIR)/$(DATA)/artifacts \
	$(if $(VALKEY_ADDR),VALKEY_ADDR=$(VALKEY_ADDR) SESSION_STORE_BACKEND=valkey INVOCATION_STORE_BACKEND=valkey) \
	RAY_ADDRESS=local RAY_USAGE_STATS_ENABLED=0
run: install sandbox
	mkdir -p $(DATA)
	$(RUN_ENV) $(BIN)/python -m serve_app.config $(RUN_CONFIG)
	$(RUN_ENV) $(BIN)/python scripts/serve_run.py $(RUN_CONFIG) --timeout $(RUN_TIMEOUT_S)

## Lint, type-check and run the whole suite (unit, HTTP contract, Ray Serve end-to-end).
test: install sandbox lint typecheck
	bash scripts/install_toolchains.sh
	$(BIN)/python scripts/test_services.py -- $(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check serve_app tests bench scripts

typecheck: install
	$(BIN)/mypy

unit: install sandbox
	$(BIN)/python scripts/test_services.py -- $(BIN)/python -m pytest -q -m "not serve"

e2e: install sandbox
	$(BIN)/python scripts/test_services.py -- $(BIN)/python -m pytest -q -m serve

bench: install
	$(BIN)/python bench/bench_invoke.py

docs: install
	$(BIN)/python scripts/gen_tools_doc.py > docs/TOOLS.md
	$(BIN)/python scripts/gen_settings_doc.py --write README.md

clean:
	rm -rf $(DATA) .pytest_cache .mypy_cache .ruff_cache

# --- Kubernetes: the RayService on the existing Ray cluster (docs/RUNBOOK.md) ----------------------
KUBECTL             ?= kubectl
WORKSPACE_NAMESPACE ?= swe-ai-fleet
RAYSERVICE          ?= workspace
DEPLOY_TIMEOUT      ?= 900s
RESTART_TIMEOUT_S   ?= 1800
POLL_S              ?= 5
SMOKE_PYTHON        ?= python3
RESTART             ?= manual
WORKSPACE_IMAGE     ?= registry.underpassai.com/swe-ai-fleet/workspace-ray
WORKSPACE_IMAGE_TAG ?= 0.1.0
IN_CLUSTER_URL      ?= http://workspace.$(WORKSPACE_NAMESPACE).svc.cluster.local:50053

K8S          = $(KUBECTL) -n $(WORKSPACE_NAMESPACE)
MONITORING_CRDS = podmonitors.monitoring.coreos.com servicemonitors.monitoring.coreos.com \
	prometheusrules.monitoring.coreos.com
# Shell snippets, expanded in recipes: the Ray cluster serving now, and its head pod.
ACTIVE_CLUSTER = $$($(K8S) get rayservice/$(RAYSERVICE) -o jsonpath='{.status.activeServiceStatus.rayClusterName}')
ACTIVE_HEAD    = $$($(K8S) get pod -l ray.io/cluster=$(ACTIVE_CLUSTER),ray.io/node-type=head -o name)
# scripts/smoke.py run by the Python of the serving head pod (read from stdin), with the token the
# pods hold: nothing secret passes through this machine.
IN_HEAD = $(K8S) exec -i -c ray-head $(ACTIVE_HEAD) -- \
	sh -c 'WORKSPACE_AUTH_TOKEN="$$WORKSPACE_AUTH_SHARED_TOKEN" exec python - "$$@"' smoke

.PHONY: deploy-workspace undeploy-workspace restart-workspace workspace-auth-token \
	workspace-valkey-password workspace-image smoke smoke-in-cluster smoke-persistence gpu-check

## Apply deploy/*.yaml in their numbered order (the monitoring objects, and the alerts of
## deploy/observability/, only where the Prometheus Operator's CRDs exist), fill the shared token
## and the Valkey password once, wait for Valkey, then for the RayService.
deploy-workspace:
	@set -e; for file in deploy/*.yaml; do \
	  case "$$file" in *-monitoring.yaml) \
	    if ! $(KUBECTL) get crd $(MONITORING_CRDS) >/dev/null 2>&1; then \
	      echo "skip $$file and deploy/observability/: the Prometheus Operator CRDs are not installed"; continue; \
	    fi;; \
	  esac; \
	  $(KUBECTL) apply -f "$$file"; \
	  case "$$file" in \
	    *-secret-workspace-auth.yaml) $(MAKE) --no-print-directory workspace-auth-token;; \
	    *-secret-workspace-valkey.yaml) $(MAKE) --no-print-directory workspace-valkey-password;; \
	    *-valkey.yaml) $(K8S) rollout status statefulset/workspace-valkey --timeout=$(DEPLOY_TIMEOUT);; \
	    *-monitoring.yaml) for rules in deploy/observability/*.yaml; do \
	      [ ! -f "$$rules" ] || $(KUBECTL) apply -f "$$rules"; done;; \
	  esac; \
	done
	$(K8S) wait --for=condition=Ready rayservice/$(RAYSERVICE) --timeout=$(DEPLOY_TIMEOUT)
	$(K8S) get rayservice/$(RAYSERVICE) service/workspace

## Give Secret workspace-auth a random shared_token unless it has one (never overwrites it).
workspace-auth-token:
	@if [ -n "$$($(K8S) get secret workspace-auth -o jsonpath='{.data.shared_token}')" ]; then \
	  echo "workspace-auth: shared_token is set"; \
	else \
	  $(SMOKE_PYTHON) -c 'import json, secrets; print(json.dumps({"stringData": {"shared_token": secrets.token_urlsafe(48)}}))' \
	    | $(K8S) patch secret workspace-auth --type=merge --patch-file=/dev/stdin >/dev/null; \
	  echo "workspace-auth: generated a new shared_token (give it to the proxy: docs/RUNBOOK.md)"; \
	fi

## Give Secret workspace-valkey a random password unless it has one (never overwrites it: Valkey
## and the Ray pods read it when they start; docs/RUNBOOK.md says how to rotate it).
workspace-valkey-password:
	@if [ -n "$$($(K8S) get secret workspace-valkey -o jsonpath='{.data.password}')" ]; then \
	  echo "workspace-valkey: password is set"; \
	else \
	  $(SMOKE_PYTHON) -c 'import json, secrets; print(json.dumps({"stringData": {"password": secrets.token_urlsafe(48)}}))' \
	    | $(K8S) patch secret workspace-valkey --type=merge --patch-file=/dev/stdin >/dev/null; \
	  echo "workspace-valkey: generated a new password"; \
	fi

## Remove what deploy-workspace made, newest first. Keeps the namespace (the fleet's), Secrets
## workspace-auth and workspace-valkey and the volumes (workspaces, artifacts, Valkey data);
## PURGE=1 removes those volumes and the Secrets too.
undeploy-workspace:
	@for file in $$(ls -r deploy/observability/*.yaml deploy/*.yaml 2>/dev/null); do \
	  case "$$file" in \
	    *-namespace.yaml) continue;; \
	    *-storage.yaml|*-secret-workspace-*.yaml) [ "$(PURGE)" = 1 ] || { echo "keep $$file (PURGE=1 removes it)"; continue; };; \
	  esac; \
	  $(KUBECTL) delete -f "$$file" --ignore-not-found || echo "could not delete $$file (see above)"; \
	done
	@if [ "$(PURGE)" = 1 ]; then $(K8S) delete pvc -l app=workspace-valkey --ignore-not-found; \
	else echo "keep the Valkey volume (PURGE=1 removes it)"; fi

## RayService's `kubectl rollout restart`: a new Ray cluster (every pod and replica new) takes
## the traffic once its application is healthy; KubeRay then deletes the old one.
restart-workspace:
	@old="$(ACTIVE_CLUSTER)"; echo "serving cluster: $$old"; \
	stamp=$$(date -u +%Y%m%dT%H%M%SZ); \
	$(K8S) patch rayservice/$(RAYSERVICE) --type=merge \
	  -p "{\"spec\":{\"rayClusterConfig\":{\"headGroupSpec\":{\"template\":{\"metadata\":{\"annotations\":{\"workspace.swe-ai-fleet/restarted-at\":\"$$stamp\"}}}}}}}"; \
	deadline=$$(( $$(date +%s) + $(RESTART_TIMEOUT_S) )); \
	while new="$(ACTIVE_CLUSTER)"; [ -z "$$new" ] || [ "$$new" = "$$old" ]; do \
	  if [ "$$(date +%s)" -ge "$$deadline" ]; then \
	    echo "restart: $(RAYSERVICE) still serves from $$old after $(RESTART_TIMEOUT_S) s" >&2; exit 1; \
	  fi; \
	  sleep $(POLL_S); \
	done; \
	echo "serving cluster: $$new"
	$(K8S) wait --for=condition=Ready rayservice/$(RAYSERVICE) --timeout=$(DEPLOY_TIMEOUT)

## The runbook's smoke test against WORKSPACE_URL, any base URL (trusted headers when
## WORKSPACE_AUTH_TOKEN is set). Standard library only: python3 is enough, no virtualenv.
smoke:
	$(SMOKE_PYTHON) scripts/smoke.py --url $(WORKSPACE_URL)

## The same from inside the cluster: in the serving head pod, against the `workspace` Service.
smoke-in-cluster:
	$(IN_HEAD) --url $(IN_CLUSTER_URL) < scripts/smoke.py

## Restart check: two invocations recorded, the service restarted, both read back `succeeded`.
## Default: against WORKSPACE_URL, while you restart `make run` (with VALKEY_ADDR) when asked.
## RESTART=rayservice: in the cluster, restarting the RayService itself (restart-workspace).
smoke-persistence:
ifeq ($(RESTART),rayservice)
	@set -e; \
	if ! created=$$($(IN_HEAD) persistence-create --url $(IN_CLUSTER_URL) < scripts/smoke.py); then \
	  echo "$$created"; exit 1; \
	fi; \
	echo "$$created"; \
	session=$$(echo "$$created" | sed -n 's/^session_created://p'); \
	ids=$$(echo "$$created" | sed -n 's/^invocations_created://p'); \
	$(MAKE) --no-print-directory restart-workspace; \
	$(IN_HEAD) persistence-check --url $(IN_CLUSTER_URL) --session "$$session" --ids "$$ids" < scripts/smoke.py
else
	$(SMOKE_PYTHON) scripts/smoke.py persistence --url $(WORKSPACE_URL)
endif

## Build the RayService's two images from ./Dockerfile (push them to the registry yourself).
workspace-image:
	docker build -t $(WORKSPACE_IMAGE):$(WORKSPACE_IMAGE_TAG) .
	docker build --build-arg RAY_IMAGE=rayproject/ray:2.60.0-py311-gpu \
	  -t $(WORKSPACE_IMAGE):$(WORKSPACE_IMAGE_TAG)-gpu .

## On a machine with an NVIDIA GPU: Ray, the app with num_gpus: 1 executors, gpu.info over HTTP.
gpu-check: install
	$(BIN)/python scripts/gpu_check.py
