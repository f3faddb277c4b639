# edocgw: `make run` starts the gateway, `make test` installs what the tests need and runs them.
# The venv's interpreter: Debian's own Python 3.11 when it is installed with venv support, else
# the first python3 on PATH. Debian builds it with profile-guided and link-time optimisation
# and links it statically; a plain source build (this machine's pyenv Python) spends 15-25%
# more CPU on the same Python code, and the gateway 8-14% more per message (issue 17).
SYSTEM_PYTHON := /usr/bin/python3.11
PYTHON ?= $(shell $(SYSTEM_PYTHON) -c 'import ensurepip' 2>/dev/null && echo $(SYSTEM_PYTHON) || echo python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
# Real servers the tests talk to, the font the test documents are typeset with, and the
# browser the admin pages are tested in (driven by playwright's Python API, never its downloads).
DEB_PACKAGES := postfix dovecot-imapd dovecot-lmtpd swaks libnet-ssleay-perl openssl fonts-dejavu-core ca-certificates chromium libreoffice-writer-nogui
# OCR of scanned documents: Tesseract with its Vietnamese model; poppler renders PDF pages.
DEB_PACKAGES += tesseract-ocr tesseract-ocr-vie poppler-utils
PYTEST_ARGS ?=
# The suite waits on servers, subprocesses and timers more than it computes: one test process
# more than there are cores keeps the CPU busy while one waits (each has its own PostgreSQL), a
# file's tests kept together so its module fixtures are made once. On 2 cores, one run each:
# 2 processes 436 s, 3 processes 382 s, 4 processes 416 s (the busy tests slow down more).
PYTEST_PARALLEL ?= -n $(shell echo $$(( $$(nproc) + 1 ))) --dist loadfile

.PHONY: run test install debs lint format bench example clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# constraints.txt pins every package to the versions CI last passed with (see its header).
$(VENV)/.installed: pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

install: $(VENV)/.installed

run: install
	$(BIN)/edocgw serve

debs:
	@missing=$$(for p in $(DEB_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then \
		echo "installing Debian packages: $$missing"; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	else \
		echo "missing Debian packages (install them as root): $$missing" >&2; \
	fi

test: debs install
	$(BIN)/pytest $(PYTEST_PARALLEL) $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

example: install
	$(BIN)/python -m config.example > edocgw.example.toml

bench: install
	$(BIN)/python bench/ingest.py --quick

clean:
	rm -rf $(VENV) var .pytest_cache test-output
