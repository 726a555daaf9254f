#!/usr/bin/env bash
# Every GPU check of issues 15 and 17 in one prepared run, for a task lent a GPU for ~15
# minutes (see /work/.library/device): run it once from the repository root, e.g. through the
# device tool with `bash benchmarks/gpu_session.sh`, and copy the tables into
# docs/benchmarks.md.  Each step has its own time limit so one slow step cannot eat the rest;
# the outputs go to $OUT (or ./gpu_results) whatever happens.
set -u
out="${OUT:-gpu_results}"
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total --format=csv | tee "$out/gpu.txt"
py="${PYTHON:-python}"
step() {  # name, seconds, command...
    local name=$1 limit=$2
    shift 2
    echo "== $name (limit ${limit}s)"
    timeout "$limit" "$@" > "$out/$name.txt" 2>&1
    echo "exit $?" >> "$out/$name.txt"
    tail -n 12 "$out/$name.txt"
}
# MFU at three sizes, fp32-held frozen weights (the default) then bf16-held.
step mfu_fp32 120 "$py" benchmarks/gpu_mfu.py --sizes gpt2-small,llama-1b,llama-3b --batch 1024
step mfu_bf16 120 "$py" benchmarks/gpu_mfu.py --sizes gpt2-small,llama-1b,llama-3b --batch 1024 \
    --decoder-weights bfloat16
# A 7B decoder on one GPU: bf16 weights and gradient checkpointing.
step mfu_7b 150 "$py" benchmarks/gpu_mfu.py --sizes llama-7b --batch 256 --steps 4 --epochs 2 \
    --decoder-weights bfloat16 --gradient-checkpointing
# FSDP on the GPU(s): equivalence to one process, and memory at Llama-3.2-1B size.
step fsdp 190 "$py" benchmarks/fsdp_gpu_check.py
