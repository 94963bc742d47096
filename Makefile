# Paywatch — the two commands a new machine needs (only Python 3.11+ required):
#   make demo   set up, then simulate a payroll area and verify every run (embedded default)
#   make test   set up, then run the whole test suite
#   make lab    set up, then open the notebooks in JupyterLab (paywatch lab)
.PHONY: setup demo test bench lab
PY ?= python3
UV = $(PY) -m uv

setup:
	@$(PY) -m uv --version >/dev/null 2>&1 || $(PY) -m pip install --quiet uv
	@UV_COMPILE_BYTECODE=1 $(UV) sync --frozen --quiet  # bytecode shipped once, at install

demo: setup
	$(UV) run --frozen paywatch demo

test: setup
	$(UV) run --frozen pytest

bench: setup
	$(UV) run --frozen python benchmarks/bench_scale.py

lab: setup
	$(UV) run --frozen --quiet paywatch lab
