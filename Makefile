# duban — two commands do all set-up on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3.12 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint unit bench reliability clean browser strict-decoders

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; v=sys.version_info[:2]; sys.exit(0 if (3,11)<=v<(3,13) else "duban needs Python 3.11 or 3.12 (durable-rules does not import on 3.13); set PYTHON=...")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@$(MAKE) --no-print-directory strict-decoders
	@touch $(STAMP)

# mblaze's mhdr: an independent strict RFC 2047 decoder for tests/test_mail_standards.py (Debian/Ubuntu).
strict-decoders:
	@command -v mhdr >/dev/null 2>&1 && exit 0; \
	if ! command -v apt-get >/dev/null 2>&1; then echo "注意：没有 apt-get，未安装 mblaze；邮件头标准测试改用 Perl 的解码器（若有）或跳过"; exit 0; fi; \
	SUDO=; [ "$$(id -u)" = 0 ] || SUDO="sudo -n"; \
	$$SUDO apt-get install -y -q mblaze >/dev/null 2>&1 || { $$SUDO apt-get update -q >/dev/null 2>&1 && $$SUDO apt-get install -y -q mblaze >/dev/null 2>&1; } \
	  || echo "注意：apt-get 安装 mblaze 未成功（需要 root 或免密 sudo）；邮件头标准测试改用 Perl 的解码器（若有）或跳过"

demo: $(STAMP)
	$(BIN)/duban demo --workspace demo-workspace

test: $(STAMP) browser lint unit

# Debian's chromium (+ driver, CJK font) for tests/web/test_web_browser.py; a no-op once installed.
browser:
	@bash .ci/browser-deps.sh

lint: $(STAMP)
	$(BIN)/ruff check engine store notifiers duban tests bench
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/python -m pytest -q --timeout 600

bench: $(STAMP)
	$(BIN)/python -m bench

reliability: $(STAMP)
	$(BIN)/python -m pytest -q tests/reliability -p no:cacheprovider --timeout 600 --durations=5

clean:
	rm -rf $(VENV) demo-workspace .pytest_cache .mypy_cache .ruff_cache
