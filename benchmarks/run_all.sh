#!/bin/sh
# Run every benchmark of docs/performance.md, in order, and keep their reports.
#
#   benchmarks/run_all.sh [PYTHON_WITH_TORCHVISION]
#
# PYTHON_WITH_TORCHVISION (default /tmp/tvenv/bin/python) is a venv made with
#   python -m venv /tmp/tvenv && /tmp/tvenv/bin/pip install torch==2.14.1 torchvision==0.29.1
#   /tmp/tvenv/bin/pip install -e . --no-deps && /tmp/tvenv/bin/pip install lark jinja2 networkx
# The reports go to $OUT (default /tmp/netdsl-bench). Takes about an hour on 2 cores
# (torch.compile on the CPU alone takes several).
set -eu
cd "$(dirname "$0")/.."
TV=${1:-/tmp/tvenv/bin/python}
OUT=${OUT:-/tmp/netdsl-bench}
mkdir -p "$OUT"
python benchmarks/cold_start.py --runs 20 --where | tee "$OUT/cold_start.md"
python benchmarks/scaling.py | tee "$OUT/scaling.md"
python benchmarks/lsp_latency.py --runs 40 | tee "$OUT/lsp_latency.md"
python benchmarks/fmt_speed.py | tee "$OUT/fmt_speed.md"
python benchmarks/diagram.py | tee "$OUT/diagram.md"
python benchmarks/playground_latency.py | tee "$OUT/playground_latency.md"
"$TV" benchmarks/torch_vs_torchvision.py --ops | tee "$OUT/torch_vs_torchvision.md"
"$TV" benchmarks/torch_vs_torchvision.py --fixed-malloc | tee "$OUT/torch_vs_torchvision_fixed_malloc.md"
python benchmarks/keras_vs_applications.py | tee "$OUT/keras_vs_applications.md"
"$TV" benchmarks/train_throughput.py --size 64 --batch 8 --steps 7 | tee "$OUT/train_throughput.md"
