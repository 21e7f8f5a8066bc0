# Front door of the project. Every target installs what it needs first and is safe to re-run.
#   make up      install, start the whole local stack, print the URLs
#   make test    install, then unit + integration tests (integration tests start their own services)

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml flink_cep/requirements.txt 2>/dev/null | sha1sum | cut -c1-12)

.PHONY: install setup up down status reset test lint

$(STAMP):
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)

setup: install
	$(BIN)/lakehouse setup

up: install
	$(BIN)/lakehouse up

down: install
	$(BIN)/lakehouse down

status: install
	$(BIN)/lakehouse status

reset: install
	$(BIN)/lakehouse reset $(if $(YES),--yes,)

test: install
	$(BIN)/lakehouse test

lint: install
	$(BIN)/ruff check .
