# The two commands of the README. Both create .venv when it is missing and install the project.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch/torchvision pinned to the builds this machine (and CI) installs from local disk;
# pyproject.toml accepts any torch>=2.3. The ray extra (about 10 s to install) lets make test run the
# tests of the Ray executor on a local 2-CPU cluster (tests/test_scale.py); they skip without it.
TORCH_PINS := torch==2.14.1 torchvision==0.29.1
STAMP := $(VENV)/.installed

.PHONY: demo test install reference mutants clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet $(TORCH_PINS)
	$(BIN)/pip install --quiet -e '.[test,ray]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/bench run --profile fast --out results/demo

# The CI suite runs with a fresh cache so that it really recomputes, then is gated against
# the committed reference (README, "Gating your CI"); pytest runs last so that its summary
# closes the output.
test: $(STAMP)
	rm -rf results/runs/ci-check results/runs/.ci-cache
	$(BIN)/bench run --suite ci --out results/runs/ci-check --cache-dir results/runs/.ci-cache --quiet --no-report
	$(BIN)/bench compare results/runs/ci-check --baseline results/reference/ci
	$(BIN)/python -m pytest -q

# Regenerate results/reference/ci: the CI suite under 8 training seeds, the first one the reference,
# all of them its seed band. Run it from a clean checkout, on purpose, and commit the result.
REF_SEEDS := 0 1 2 3 4 5 6 7
REF_RUNS := results/runs/ci-ref
reference: $(STAMP)
	rm -rf $(REF_RUNS) && mkdir -p $(REF_RUNS)
	for seed in $(REF_SEEDS); do \
	  $(BIN)/bench run --suite ci --train-seed $$seed --out $(REF_RUNS)/seed$$seed --cache-dir $(REF_RUNS)/.cache \
	    --quiet --no-report > $(REF_RUNS)/seed$$seed.log || exit 1; \
	done
	$(BIN)/bench baseline save $(REF_RUNS)/seed$(firstword $(REF_SEEDS)) ci \
	  --band $(addprefix $(REF_RUNS)/seed,$(wordlist 2,$(words $(REF_SEEDS)),$(REF_SEEDS)))

# Mutation testing of the code that decides published numbers and the CI gate ([tool.mutmut] in
# pyproject.toml): not part of make test (about an hour on 2 cores); prints the score per module and
# fails on a survivor that tests/MUTANTS.md does not explain.
mutants: $(STAMP)
	$(BIN)/pip install --quiet -e '.[test,ray,mutants]'
	$(BIN)/python benchmarks/mutation_score.py

clean:
	rm -rf results/runs results/demo mutants
