#!/bin/sh
# The long generator_sup run (issue 13), resumable: run from the repository root; it continues
# from .cache/miniature/train/generator_sup-state.pt if present, else from the committed
# states/miniature/generator_sup-carry.pt (optimizer moments start afresh), else from step 0.
# Python: $PYTHON, default the venv that `make` creates (.venv/bin/python).
exec nohup nice -n 15 env OMP_NUM_THREADS=1 PYTHONPATH="$PWD" "${PYTHON:-.venv/bin/python}" -m redestyle.miniature.train generator_sup \
  --threads 1 --batch 16 --steps 200000 --sup-steps 7000 --seed 0 \
  --eval-every 1000 --save-every 500 \
  --out .cache/miniature/train --carry states/miniature --ship states/miniature \
  >> states/miniature/generator_sup.log 2>&1
