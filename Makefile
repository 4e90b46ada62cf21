# Two commands do all set-up on a fresh machine (see README):
#   make reproduce   # every figure on the default profile, into figures/
#   make test        # the whole suite: unit, parity, nbval
#   make protocol    # notebook 03's held-out protocol on its full set (the README's table; ~45 min on 2 cores)
#   make supervision # notebook 04's §4.4 comparison on its full set (the README's Fig. 6 table)
# Both create .venv when it is missing, with the exact versions of requirements.lock (the suite
# passed with them; torch comes from the local wheel cache).

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.redestyle-installed
# Kernels and matplotlib write caches under HOME: keep them inside the checkout.
export IPYTHONDIR     := $(CURDIR)/.cache/ipython
export MPLCONFIGDIR   := $(CURDIR)/.cache/matplotlib
export TORCH_HOME     := $(CURDIR)/.cache/torch
export JUPYTER_CONFIG_DIR := $(CURDIR)/.cache/jupyter
export JUPYTER_DATA_DIR := $(CURDIR)/$(VENV)/share/jupyter

.PHONY: venv reproduce protocol supervision test lab bench lint clean

venv: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	mkdir -p .cache/ipython .cache/matplotlib .cache/torch .cache/jupyter
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --progress-bar off --quiet -c requirements.lock --upgrade pip setuptools
	$(PY) -m pip install --progress-bar off --quiet -c requirements.lock -e '.[test]'
	$(PY) -m ipykernel install --sys-prefix --name python3 > /dev/null
	touch $(STAMP)

reproduce: $(STAMP)
	mkdir -p .cache/ipython .cache/matplotlib .cache/torch .cache/jupyter
	$(PY) -m redestyle reproduce $(ARGS)

# The README's protocol numbers: notebook 03 with protocol_set=full (30 people x 4 portraits, both
# post-processing settings) writes figures/protocol_full.json, table_protocol_full.txt and the
# fig45_protocol_full_* figures; the executed copy goes to .cache/executed/.
protocol: $(STAMP)
	mkdir -p .cache/ipython .cache/matplotlib .cache/torch .cache/jupyter
	$(PY) -m redestyle reproduce --only 03 --set protocol_set=full --executed .cache/executed $(ARGS)

# The README's §4.4 numbers: notebook 04 with supervision_set=full (30 contents x 8 exemplars) writes
# figures/supervision_full.json, table_supervision_full.txt and the fig6_supervision_full* figures.
supervision: $(STAMP)
	mkdir -p .cache/ipython .cache/matplotlib .cache/torch .cache/jupyter
	$(PY) -m redestyle reproduce --only 04 --set supervision_set=full --executed .cache/executed $(ARGS)

test: $(STAMP)
	mkdir -p .cache/ipython .cache/matplotlib .cache/torch .cache/jupyter
	REDESTYLE_FIGURES_DIR=$(CURDIR)/.cache/test-figures $(PY) -m pytest tests notebooks --nbval-lax --nbval-cell-timeout=3600 -p no:cacheprovider $(ARGS)

# JupyterLab refuses to run as root without --allow-root; containers usually run as root.
lab: $(STAMP)
	$(VENV)/bin/jupyter lab notebooks $$(test "$$(id -u)" = 0 && echo --allow-root)

# make bench BENCH=restyle_iteration ARGS="--reps 3": one script of benchmarks/ (default: ops)
BENCH ?= ops_and_generator
bench: $(STAMP)
	$(PY) benchmarks/$(BENCH).py $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check redestyle tests benchmarks

clean:
	rm -rf $(VENV) .cache build *.egg-info
