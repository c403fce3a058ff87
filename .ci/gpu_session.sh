#!/usr/bin/env bash
# One device-tool call (see the device README): install the carried wheels, calibrate the GPU twice
# back to back into the repository's registry, check against bare CUDA-event loops, run the GPU tests.
# Everything comes back flat under $OUT (the tool returns files at most two folders down).
set -uo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
stamp=$(mktemp); sleep 1  # files the runs write are newer than this
nvidia-smi --query-gpu=name,clocks.max.sm,clocks.sm,power.limit,temperature.gpu,persistence_mode --format=csv | tee $OUT/nvidia-smi.txt
for run in 1 2; do
  /usr/bin/time -f "wall %e s, max RSS %M kB" python3 -m pytest bench/ "$@" --framework pytorch --device cuda \
    --registry registry -p no:randomly -q --benchmark-columns=min,median,rounds 2>&1 \
    | tee $OUT/cal_run$run.log | grep -v '^test_' | tail -45
done
new=$(find registry -name '*.json' -newer "$stamp")
for f in $new; do cp "$f" "$OUT/$(echo "$f" | sed 's#/#__#g')"; done
cal=$(echo "$new" | tr ' ' '\n' | grep '/calibrations/' | grep -v history | head -1)
python3 tools/bare_loop.py "$cal" --seconds 1.5 2>&1 | tee $OUT/bare_loop.txt
python3 -m pytest tests/test_gpu.py -q -p no:randomly 2>&1 | tail -4
