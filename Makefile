# The two commands a fresh machine needs: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SAMPLE := resources/samples/phantom_hand.dcm

.PHONY: run test test-fast lint bench stress sample phantom-sheet default-model demo-classifier phantom-tables phantom-report clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Opens the workstation on the bundled sample, screened; without a display it renders the window to build/screen.png.
run: $(STAMP)
	$(BIN)/osteo inspect $(SAMPLE)
	@if [ -n "$$DISPLAY$$WAYLAND_DISPLAY" ] && [ "$$QT_QPA_PLATFORM" != offscreen ]; then \
		$(BIN)/osteo-app $(SAMPLE) --workspace screen; \
	else mkdir -p build && $(BIN)/osteo-app $(SAMPLE) --workspace screen --screenshot build/screen.png \
		&& echo "no display: the Screen workspace on the sample is rendered to build/screen.png"; fi

test: $(STAMP) lint
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q --durations=20

# Everything but the tests marked slow (each over about 5 s): a quick check while working.
test-fast: $(STAMP) lint
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q -m "not slow"

# Ruff's lint and its formatting (120 columns), as pyproject.toml configures them.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: $(STAMP)
	$(BIN)/python bench/phantom_speed.py
	$(BIN)/python bench/phantom_leak.py
	$(BIN)/python bench/annotate_latency.py
	$(BIN)/python bench/multicrop_speed.py
	$(BIN)/python bench/screen_speed.py
	$(BIN)/python bench/screen_memory.py

# Thousands of mutated DICOM, PNG and JPEG files through the loader: typed errors only, none slower than 5 s.
stress: $(STAMP)
	$(BIN)/python -m tests.io_fuzz --cases 3000

# Regenerates the bundled sample and the committed contact sheet.
sample: $(STAMP)
	$(BIN)/python -c "from osteo_engine.phantom.dicom import write_phantom_dicom; write_phantom_dicom('$(SAMPLE)')"

phantom-sheet: $(STAMP)
	$(BIN)/osteo phantom build/phantom-sheet --subjects 16 --seed 0
	$(BIN)/osteo contact-sheet build/phantom-sheet --out docs/phantom.png

clean:
	rm -rf $(VENV) build .pytest_cache

# The bundled segmenter: MoSE's shared head (4 modules, a latent of size 2, each module held to at least a third of
# the raters' coupled mass) grafted onto the U-Net of the per-module segmenter bundled before commit $(PER_MODULE)
# (its card lists its own five stages), then 4 epochs at 384x480 on the atlas masks (SAM, from the landmarks) and a
# phantom cohort whose 3 raters have habits; evaluation; publication. The shared design trained from scratch
# stayed far below on the atlas after 20 epochs (docs/segmenter-modules.md).
ATLAS := ../shared/data/hand-atlas
PER_MODULE := 6bee0c0
SEG_DATA := --data build/atlas-auto/manifest.csv build/h0/manifest.csv --repeat 3 1 --samples 4 --preset cpu-small
SEG := runs/seg-graft/checkpoints/best.safetensors
default-model: $(STAMP)
	test -f build/atlas-auto/manifest.csv || $(BIN)/osteo annotate-auto --images $(ATLAS)/images \
		--landmarks $(ATLAS)/landmarks.csv --out build/atlas-auto
	test -f build/h0/manifest.csv || $(BIN)/osteo phantom build/h0 --subjects 192 --seed 0
	mkdir -p build/seg-per-module
	for f in safetensors json; do git show $(PER_MODULE):resources/models/segmenter.$$f \
		> build/seg-per-module/segmenter.$$f; done
	$(BIN)/osteo segment train $(SEG_DATA) --epochs 4 --init build/seg-per-module/segmenter.safetensors \
		--anneal-fraction 0 --lr 5e-4 --input-size 384 480 --module-share 0.3334 --latent-size 2 --out runs/seg-graft \
		$$(test -d runs/seg-graft && echo --resume)
	$(BIN)/osteo segment fit-errors --model $(SEG) --data build/atlas-auto/manifest.csv build/h0/manifest.csv
	$(BIN)/osteo segment evaluate --model $(SEG) --second-opinion --data build/atlas-auto/manifest.csv --split val \
		--landmarks $(ATLAS)/landmarks.csv --json > build/eval-atlas-val.json
	$(BIN)/osteo segment evaluate --model $(SEG) --second-opinion --data build/h0/manifest.csv --split test --json \
		> build/eval-phantom-test.json
	$(BIN)/osteo segment evaluate --model $(SEG) --second-opinion --data build/h0/manifest.csv --split test --truth \
		--json > build/eval-phantom-test-truth.json
	$(BIN)/osteo segment publish $(SEG) --out resources/models/segmenter.safetensors \
		--evaluation atlas_val=build/eval-atlas-val.json phantom_test=build/eval-phantom-test.json \
		phantom_test_truth=build/eval-phantom-test-truth.json
	@echo "the demo classifier's refer policy, re-sized for this segmenter (its instability is what it reads)"
	test -f build/c0/manifest.csv || $(BIN)/osteo phantom build/c0 --subjects 192 --seed 0
	test -f build/c2/manifest.csv || $(BIN)/osteo phantom build/c2 --subjects 192 --seed 2
	$(BIN)/osteo export-screening --encoder resources/models/screening/encoder.safetensors \
		--probe resources/models/screening/probe.safetensors $(DEMO) --calibration build/c2/manifest.csv \
		--out build/demo-export --synthetic
	cp build/demo-export/* resources/models/screening/

# The bundled demo classifier, on synthetic data only: phantom cohort c0, SimCLR on the bundled segmenter's bone
# patches, the linear probe, and the refer policy sized on a second cohort (c2) and audited on c0's test images.
DEMO := --data build/c0/manifest.csv
demo-classifier: $(STAMP)
	test -f build/c0/manifest.csv || $(BIN)/osteo phantom build/c0 --subjects 192 --seed 0
	test -f build/c2/manifest.csv || $(BIN)/osteo phantom build/c2 --subjects 192 --seed 2
	$(BIN)/osteo pretrain --method simclr $(DEMO) --preset cpu-small --patch-size 96 --out runs/demo-ssl \
		$$(test -d runs/demo-ssl && echo --resume)
	$(BIN)/osteo probe --encoder runs/demo-ssl $(DEMO) --radiogrammetry auto --out runs/demo-probe
	$(BIN)/osteo export-screening --encoder runs/demo-ssl --probe runs/demo-probe $(DEMO) \
		--calibration build/c2/manifest.csv --out resources/models/screening --synthetic

# The paper's tables on the phantom cohort (issue 18), in parts across sessions: the committed per-run results and
# patch banks in docs/results/phantom/ seed build/exp-phantom (a finished run is reused only when its settings
# match), the runs asked for are trained, and every finished run's result, the report and the banks are copied
# back (the segmented banks only, 5.5 MB: they take 45 min to make; the raw ones are quick). TABLES_ARGS picks
# the part, e.g. make phantom-tables TABLES_ARGS="--tables 1 --seeds 1".
TABLES_ARGS ?= --tables 1 2 3 4 --seeds 0 1 2
RESULTS := docs/results/phantom
TABLES := $(BIN)/osteo experiment --data build/c0/manifest.csv --test-data build/ext500/manifest.csv \
	--preset cpu-small --methods simclr supcon swav vicreg --out build/exp-phantom \
	--segmenter $(RESULTS)/segmenter.safetensors
phantom-tables: $(STAMP)
	test -f build/c0/manifest.csv || $(BIN)/osteo phantom build/c0 --subjects 192 --seed 0
	test -f build/ext500/manifest.csv || $(BIN)/osteo phantom build/ext500 --subjects 500 --seed 1
	mkdir -p build/exp-phantom/runs build/exp-phantom/cache
	cp -rn $(RESULTS)/runs/. build/exp-phantom/runs/ 2>/dev/null || true
	cp -n $(RESULTS)/cache/*.npz build/exp-phantom/cache/ 2>/dev/null || true
	$(TABLES) $(TABLES_ARGS)
	$(MAKE) phantom-report

# The report of every finished run of the whole plan (none trained), copied with the runs' results into docs.
phantom-report: $(STAMP)
	$(TABLES) --tables 1 2 3 4 --seeds 0 1 2 --finished-only
	cd build/exp-phantom && find runs -maxdepth 2 -name result.json -exec cp --parents {} ../../$(RESULTS)/ \;
	mkdir -p $(RESULTS)/cache && cp build/exp-phantom/cache/patches-patches-*.npz $(RESULTS)/cache/
	cp build/exp-phantom/results.json build/exp-phantom/report.md build/exp-phantom/*.png $(RESULTS)/
