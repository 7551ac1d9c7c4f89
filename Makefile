# Parley: `make run` starts the app on the local model; `make test` runs every test.
# Both build everything they need from nothing: the venv, the pinned pip packages and,
# for tests, Debian's chromium. pip's cache (~/.cache/pip) keeps the llama-cpp-python wheel,
# so only the first build takes about 6 minutes.

PYTHON ?= python3
VENV   := .venv
PIP    := $(VENV)/bin/pip
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
export CMAKE_BUILD_PARALLEL_LEVEL ?= 2
# llama-cpp-python compiles llama.cpp for the CPU at install. Its default, -march=native, can use
# instructions a virtual machine advertises but does not enable (AMX's tilezero: SIGILL at the first
# token), so on x86-64 it is built for AVX2, which every x86-64 server of the last decade runs.
LLAMA_CMAKE_ARGS := $(if $(filter x86_64,$(shell uname -m)),-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON)

.PHONY: run serve worker copy-conversations copy-knowledge-bases assign-owner migrate test check lint duplicates bench screenshots lock chromium services sandbox media clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.deps: requirements.txt constraints.txt | $(VENV)/bin/python
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PIP) install -r requirements.txt -c constraints.txt
	touch $@

$(VENV)/.test-deps: requirements-test.txt $(VENV)/.deps
	$(PIP) install -r requirements-test.txt -c constraints.txt
	touch $@

# PostgreSQL 15 and redis-server 7 from Debian, for the tests of the database backends and the
# queue (the tests start their own throwaway instances on free ports).
services:
	@dpkg -s postgresql-15 redis-server >/dev/null 2>&1 || { $(SUDO) apt-get update && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y --no-install-recommends postgresql-15 redis-server; }

# Debian's bubblewrap: the agent's "run Python" tool runs code with no network and a read-only file
# system through it (utils/sandbox.py); without it Parley falls back to `unshare -n` and says so.
# Debian's python3-matplotlib is what the sandboxed interpreter (the system's Python) draws charts with.
sandbox:
	@dpkg -s bubblewrap python3-matplotlib >/dev/null 2>&1 || { $(SUDO) apt-get update && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y --no-install-recommends bubblewrap python3-matplotlib; }

# Debian's Tesseract (an image's text for models that cannot see images: utils/ocr.py) and espeak-ng
# (the voice when Piper cannot load: utils/speech.py), both run as processes.
media:
	@dpkg -s tesseract-ocr tesseract-ocr-eng espeak-ng >/dev/null 2>&1 || { $(SUDO) apt-get update && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y --no-install-recommends tesseract-ocr tesseract-ocr-eng espeak-ng; }

chromium:
	@dpkg -s chromium fonts-noto-color-emoji >/dev/null 2>&1 || { $(SUDO) apt-get update && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y --no-install-recommends chromium fonts-dejavu-core fonts-noto-color-emoji; }

$(VENV)/.bench-deps: requirements-bench.txt $(VENV)/.test-deps
	$(PIP) install -r requirements-bench.txt -c constraints.txt
	touch $@

# Re-freeze constraints.txt after changing requirements*.txt (builds a throwaway venv).
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install -r requirements-bench.txt
	{ head -2 constraints.txt; .lock-venv/bin/pip freeze --exclude-editable; } > constraints.new && mv constraints.new constraints.txt
	rm -rf .lock-venv

run: $(VENV)/.deps
	@$(MAKE) --no-print-directory sandbox || echo "bubblewrap was not installed: the agent's Run Python tool is off (the page says how)."
	@$(MAKE) --no-print-directory media || echo "Tesseract and espeak-ng were not installed: images are not read as text for the local model (the page says so)."
	$(VENV)/bin/streamlit run Home.py

# The chat server (api/): uvicorn on 127.0.0.1:$${PARLEY_API_PORT:-8000}, on the local model by default.
serve: $(VENV)/.deps
	$(VENV)/bin/python -m api

# The gates run before pytest: lint and format (ruff, configured in pyproject.toml), types (mypy
# --strict on model/, controller/, utils/, api/ and worker/) and repeated code in the app.
lint: $(VENV)/.test-deps duplicates
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# No repeated code inside the app's own folders (tests/ and bench/ are not the app). The
# `duplicates` command comes with the developers' tool library; where it is missing, the gate says so.
APP_PATHS := (model|controller|utils|api|worker|view|pages)/[^ ]+|Home\.py|settings\.py
duplicates:
	@if command -v duplicates >/dev/null 2>&1; then \
	  found=$$(duplicates --most 200 --seconds 60 | grep -E '^D[0-9]+ ($(APP_PATHS)):[0-9-]+ ~ ($(APP_PATHS)):' || true); \
	  if [ -n "$$found" ]; then echo "$$found"; echo "duplicates: repeated code inside the app (above)"; exit 1; fi; \
	  echo "duplicates: no repeated code inside the app"; \
	else echo "duplicates: the command is not on this machine, so this gate is skipped"; fi

test: $(VENV)/.test-deps chromium services sandbox media lint
	$(VENV)/bin/python -m pytest

# The quick tier for the inner loop: the gates, then the tests that need neither the local model
# nor a browser (PostgreSQL and Redis, which start in a second, included).
check: $(VENV)/.test-deps services sandbox media lint
	$(VENV)/bin/python -m pytest -m "not model and not browser" -q

# A model worker for the chat server's queue (needs REDIS_URL); start as many as you like.
worker: $(VENV)/.deps
	$(VENV)/bin/python -m worker

# Copy every conversation between stores: make copy-conversations FROM=conversations.json TO=postgresql://...
# (`make migrate` is the same command under its older name: no schema changes, a copy.)
copy-conversations migrate: $(VENV)/.deps
	$(VENV)/bin/python -m model.copy_conversations --from "$(FROM)" --to "$(TO)"

# Give what was kept before accounts were on to someone who has signed in once: make assign-owner OWNER=<e-mail>
assign-owner: $(VENV)/.deps
	$(VENV)/bin/python -m model.assign_owner "$(OWNER)"

# Copy every knowledge base between stores, embeddings and files included (nothing is embedded again):
# make copy-knowledge-bases FROM=knowledge_bases TO=postgresql://...
copy-knowledge-bases: $(VENV)/.deps
	$(VENV)/bin/python -m utils.copy_knowledge_bases --from "$(FROM)" --to "$(TO)"

# Refresh the README's and the Help page's screenshots in docs/ on purpose (tests write theirs to a
# temporary folder), a dark, narrow one (narrow_dark.png) and the conversation list included.
screenshots: $(VENV)/.test-deps chromium
	PARLEY_SCREENSHOT_DIR=$(CURDIR)/docs $(VENV)/bin/python -m pytest tests/test_browser.py tests/test_browser_chat.py \
	  tests/test_browser_tools.py tests/test_browser_ux.py tests/test_browser_web.py tests/test_browser_assistants.py \
	  tests/test_browser_media.py tests/test_browser_kb_shared.py tests/test_browser_accounts.py \
	  -k "save_reload or knowledge or regenerate_gives or calculator or never_clip or one_click or sources_shown or starter or read_as_text or chart_from or signed_out_visitor or two_people or makes_an_api_key"

bench: $(VENV)/.bench-deps chromium
	$(VENV)/bin/python -m bench.run

clean:
	rm -rf $(VENV) .pytest_cache
