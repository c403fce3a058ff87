#!/usr/bin/env bash
# One device-tool call: install carried wheels, calibrate the GPU twice back to back, compare with a
# bare CUDA-event loop, run the GPU tests. Results come back flat under $OUT.
set -uo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
reg=/tmp/reg
nvidia-smi --query-gpu=name,clocks.max.sm,clocks.sm,power.limit,temperature.gpu,persistence_mode --format=csv | tee $OUT/nvidia-smi.txt
for run in 1 2; do
  /usr/bin/time -v python3 -m pytest bench/ "$@" --framework pytorch --device cuda --registry $reg -p no:randomly -q \
    --benchmark-columns=min,median,rounds 2>&1 | tee $OUT/cal_run$run.log | grep -v '^test_gemm' | tail -40
done
for f in $(find $reg -name '*.json'); do cp "$f" "$OUT/$(basename $(dirname $f))__$(basename $f)"; done
cal=$(find $reg -path '*calibrations/*.json' -not -path '*history*' | head -1)
python3 tools/bare_loop.py "$cal" --seconds 1.5 2>&1 | tee $OUT/bare_loop.txt
python3 -m pytest tests/test_gpu.py -q -p no:randomly 2>&1 | tail -15
