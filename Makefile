# The two commands a fresh machine needs: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SAMPLE := resources/samples/phantom_hand.dcm
export QT_QPA_PLATFORM ?= offscreen

.PHONY: run test bench sample phantom-sheet clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/osteo inspect $(SAMPLE)

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python bench/phantom_speed.py
	$(BIN)/python bench/phantom_leak.py

# Regenerates the bundled sample and the committed contact sheet.
sample: $(STAMP)
	$(BIN)/python -c "from osteo_engine.phantom.dicom import write_phantom_dicom; write_phantom_dicom('$(SAMPLE)')"

phantom-sheet: $(STAMP)
	$(BIN)/osteo phantom build/phantom-sheet --subjects 16 --seed 0
	$(BIN)/osteo contact-sheet build/phantom-sheet --out docs/phantom.png

clean:
	rm -rf $(VENV) build .pytest_cache
