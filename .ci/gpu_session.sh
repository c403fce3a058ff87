#!/usr/bin/env bash
# One device-tool call (see the device README): install the carried wheels, calibrate the GPU twice back to
# back into the repository's registry, run the referees on the same card (mamf-finder for bf16, fp16 and
# fp8 over the anchors' grid; tools/gpu_referee.py for int8, tf32, fp32, fp64 at the shapes the search
# filed; tools/nn_referee.py for the model layers, and cuDNN's best algorithm on 3 standard layers), and the
# GPU tests. Everything comes back as one archive under $OUT (the tool returns <= 8 files).
#   smoke: bash .ci/gpu_session.sh smoke   (a quick run, nothing kept)
#   full:  bash .ci/gpu_session.sh full
set -uo pipefail
mode=${1:-full}
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0 HWCAL_STATE_DIR=/tmp/hwcal-state
res=/tmp/res; mkdir -p $res
stamp=$(mktemp); sleep 1
nvidia-smi --query-gpu=name,clocks.max.sm,clocks.sm,power.limit,temperature.gpu,persistence_mode --format=csv | tee $res/nvidia-smi.txt
plugin=(-p hwcal.plugin.hooks)  # not pip-installed here: the entry point is not registered
if [ "$mode" = smoke ]; then
  python3 -m pytest bench/ "${plugin[@]}" --framework pytorch --device cuda --quick --registry /tmp/smoke-reg \
    -p no:randomly -q -x --benchmark-columns=min,rounds 2>&1 | tee $res/smoke.log | grep -v '^test_' | tail -60
  python3 tools/gpu_referee.py /tmp/smoke-reg/gpu/*/calibrations/*.json --precisions int8,fp32 2>&1 | tee $res/referee.txt
else
  for run in 1 2; do
    /usr/bin/time -f "wall %e s, max RSS %M kB" python3 -m pytest bench/ "${plugin[@]}" --framework pytorch \
      --device cuda --registry registry -p no:randomly -q --benchmark-columns=min,median,rounds 2>&1 \
      | tee $res/cal_run$run.log | grep -v '^test_' | grep -v '^blas\|^gemm shapes\|^launch floors' | tail -32
    find registry -name '*.json' -newer "$stamp" > $res/new_files.txt
    tar czf $OUT/registry_new.tgz $(cat $res/new_files.txt); tar czf $OUT/results.tgz -C /tmp res
  done
  cal=$(find registry/gpu -path '*/calibrations/*.json' -newer "$stamp" -not -path '*/history/*' | head -1)
  python3 tools/gpu_referee.py "$cal" 2>&1 | tee $res/referee.txt
  python3 tools/nn_referee.py "$cal" --cudnn-best 2>&1 | tee $res/nn_referee.txt  # model layers, back to back
  for dt in bfloat16 float16 float8_e4m3fn; do
    timeout 150 python3 .devout/anchors/mamf-finder.py --m 1024 2048 4096 8192 16384 --n 1024 2048 4096 8192 16384 \
      --k 2048 4096 8192 13312 16384 --dtype $dt --output_file $res/mamf_$dt.txt --no-verbose 2>&1 | tail -4
    tar czf $OUT/results.tgz -C /tmp res
  done
  python3 -m pytest tests/test_gpu.py tests/test_nn_gpu.py -q -p no:randomly 2>&1 | tail -4 | tee $res/gpu_tests.txt
fi
tar czf $OUT/results.tgz -C /tmp res
