#!/usr/bin/env bash
# Device-tool calls (see the device README): install the carried wheels (.whl), then
#   cal:      calibrate the GPU twice back to back into the repository's registry, the GPU tests, and the
#             referees that need the fresh file at once (tools/gpu_referee.py for int8, tf32, fp32, fp64 at the
#             shapes the search filed; tools/energy_referee.py, NVML's counter around plain loops)
#   referees: on the filed calibration, mamf-finder for bf16, fp16 and fp8 (a reduced grid around the
#             anchors' best shapes), tools/nn_referee.py (model layers, cuDNN's best algorithm on 3 standard
#             layers), tools/model_referee.py (held-out decoder-layer ops, bf16 and fp32) and the whole-layer
#             check of hwcal-validate-predictions --model
#   predict:  calibrate once into the registry, then the prediction referees on that file at once
#             (tools/model_referee.py for bf16, fp32 and fp16; the whole-layer check of Llama layers)
#   twice:    calibrate twice back to back (run-to-run, walls), then the prediction referees on the second
#   check:    no calibration: the bf16 and fp32 referees on the committed file of the GPU's type
#   short:    calibrate once, then the bf16 and fp32 prediction referees, the whole-layer check and the energy
#             referee
#   pair:     as short, without the energy referee
#   smoke:    a quick run, nothing kept
# Everything comes back as archives under $OUT (the tool returns <= 8 files). mamf-finder is copied into
# .devout/anchors/ (carried) from ../shared/anchors, which does not travel.
set -uo pipefail
mode=${1:-cal}
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0 HWCAL_STATE_DIR=/tmp/hwcal-state
res=/tmp/res; mkdir -p $res
stamp=$(mktemp); sleep 1
save() { tar czf "$OUT/results_$mode.tgz" -C /tmp res; }
nvidia-smi --query-gpu=name,clocks.max.sm,clocks.sm,power.limit,temperature.gpu,persistence_mode --format=csv | tee $res/nvidia-smi.txt
plugin=(-p hwcal.plugin.hooks)  # not pip-installed here: the entry point is not registered
# The walls below are a user's second run: bytecode (and pytest's rewritten plugin modules) cached by a
# collection first, as any earlier run leaves them; a first run on a fresh tree also compiles every module.
unset PYTHONDONTWRITEBYTECODE
python3 -m pytest bench/ "${plugin[@]}" --framework pytorch --device cuda --registry /tmp/warm-reg --collect-only \
  -q -p no:randomly >/dev/null 2>&1
cal=$(ls registry/gpu/nvidia_h200/calibrations/*.json 2>/dev/null | head -1)
calibrate() {  # one full calibration into the repository's registry; its log is res/cal_run$1.log
  # --file-disturbed: the referees below judge this run's own file, however disturbed; which file the
  # repository keeps is decided where the results come back (its interference log is in the file)
  /usr/bin/time -f "wall %e s, max RSS %M kB" python3 -m pytest bench/ "${plugin[@]}" --framework pytorch \
    --device cuda --registry registry --file-disturbed -p no:randomly -q --durations=0 --benchmark-columns=min,median,rounds 2>&1 \
    | tee $res/cal_run$1.log | grep -E '^(wall|hwcal|FAILED|ERROR)|passed|failed|interference|disturbed' | tail -12
  find registry \( -name '*.json' -o -name '*.json.gz' \) -newer "$stamp" > $res/new_files.txt  # history is packed
  # shellcheck disable=SC2046  # one argument per file
  tar czf $OUT/registry_new.tgz $(cat $res/new_files.txt); save
  cal=$(find registry/gpu -path '*/calibrations/*.json' -newer "$stamp" -not -path '*/history/*' | head -1)
}
predictions() {  # the held-out decoder-layer ops in each precision given, then the Llama whole-layer check
  for p in "$@"; do
    timeout 150 python3 tools/model_referee.py "$cal" --framework pytorch --device cuda --precision $p \
      --models gpu --save $res/model_ref_$p.json 2>&1 | tee $res/model_referee_$p.txt | tail -12; save
  done
  timeout 90 python3 tools/validate_predictions.py "$cal" --model docs/models/llama-3.1-8b-t1.yaml \
    --model docs/models/llama-3.1-8b-t512.yaml --model docs/models/llama-3.1-8b-t4096.yaml 2>&1 \
    | tee $res/whole_layer_bf16.txt | grep -E 'layer \(|alone:|skipped|error' ; save
}
case "$mode" in
smoke)
  python3 -m pytest bench/ "${plugin[@]}" --framework pytorch --device cuda --quick --registry /tmp/smoke-reg \
    -p no:randomly -q -x --benchmark-columns=min,rounds 2>&1 | tee $res/smoke.log | grep -v '^test_' | tail -60
  python3 tools/gpu_referee.py /tmp/smoke-reg/gpu/*/calibrations/*.json --precisions int8,fp32 2>&1 | tee $res/referee.txt
  ;;
cal)
  calibrate 1
  calibrate 2
  echo "filed: $cal"
  timeout 90 python3 tools/gpu_referee.py "$cal" 2>&1 | tee $res/referee.txt; save
  # the neighbour tests in a process of their own: an earlier test's CUDA context is another process to them
  timeout 120 python3 -m pytest tests/test_gpu.py -k neighbour -q -p no:randomly 2>&1 | tail -4 | tee $res/gpu_tests.txt
  timeout 150 python3 -m pytest tests/test_gpu.py tests/test_nn_gpu.py tests/test_energy_gpu.py \
    tests/test_memory_system.py -q -p no:randomly -rfs 2>&1 | tail -8 | tee -a $res/gpu_tests.txt; save
  timeout 120 python3 tools/energy_referee.py "$cal" 2>&1 | tee $res/energy_referee.txt; save
  ;;
predict)
  calibrate 1
  echo "filed: $cal"
  predictions bf16 fp32 fp16
  ;;
check)  # no calibration: the bf16 and fp32 prediction referees on the committed file of this GPU's type
  case "$(head -2 $res/nvidia-smi.txt | tail -1)" in
    *H100*) cal=$(ls registry/gpu/h100_sxm5/calibrations/*.json | head -1) ;;
  esac
  echo "calibration: $cal"
  predictions bf16 fp32
  ;;
short)  # one calibration, the bf16 and fp32 prediction referees (a device budget too small for predict), energy's
  calibrate 1
  echo "filed: $cal"
  predictions bf16 fp32
  timeout 120 python3 tools/energy_referee.py "$cal" 2>&1 | tee $res/energy_referee.txt; save
  ;;
pair)  # one calibration, then the bf16 and fp32 prediction referees and the whole-layer check (~8 min a call)
  calibrate 1
  echo "filed: $cal"
  predictions bf16 fp32
  ;;
twice)  # run-to-run and the run's wall, then the prediction referees on the second (filed) calibration
  calibrate 1
  calibrate 2
  echo "filed: $cal"
  predictions bf16 fp32 fp16
  ;;
referees)
  echo "calibration: $cal"
  for dt in bfloat16 float16 float8_e4m3fn; do
    timeout 100 python3 .devout/anchors/mamf-finder.py --m 1024 2048 4096 --n 2048 4096 --k 8192 13312 16384 \
      --dtype $dt --output_file $res/mamf_$dt.txt --no-verbose 2>&1 | tail -3; save
  done
  timeout 150 python3 tools/nn_referee.py "$cal" --cudnn-best 2>&1 | tee $res/nn_referee.txt | tail -30; save
  predictions bf16 fp32
  timeout 90 python3 tools/validate_predictions.py "$cal" --model docs/models/resnet50-bottleneck-conv2.yaml \
    --model docs/models/mobilenetv2-inverted-residual-24.yaml 2>&1 | tee $res/whole_layer_cnn.txt \
    | grep -E 'layer \(|alone:|skipped|error'
  ;;
esac
save
