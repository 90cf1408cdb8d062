#!/bin/bash
# Train the embedded model on the GPU machine: installs carried wheels, trains through `accelerate launch` (one process per GPU, bf16), tars the result into $OUT.
set -o pipefail
export PYTHONUNBUFFERED=1 OPENMOJI_FONT=$PWD/.whl/glyf_colr0.ttf HF_HUB_OFFLINE=1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD
python3 -c "import diffusers; from diffusers import StableDiffusionPipeline" 2>/dev/null || {
  echo "installing carried transformers stack"; python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/full/*.whl || exit 1; }
python3 -c "import accelerate" || { echo "accelerate is missing: carry its wheel (and psutil's) in .whl/"; exit 1; }
python3 -c "import torch, diffusers, transformers, accelerate, huggingface_hub as h; print(torch.__version__, diffusers.__version__, transformers.__version__, accelerate.__version__, h.__version__, torch.cuda.get_device_name())"
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv
NGPU=$(python3 -c "import torch; print(torch.cuda.device_count())")
LAUNCH="--num_processes $NGPU --num_machines 1 --mixed_precision bf16 --dynamo_backend no"
[ "$NGPU" -gt 1 ] && LAUNCH="--multi_gpu $LAUNCH"
python3 -m accelerate.commands.launch $LAUNCH -m diffedit.train --out /tmp/model "$@" 2>&1 | grep -v "it/s\]" | tee $OUT/train_stdout.txt
cp /tmp/model/metrics.json /tmp/model/train_log.txt $OUT/ 2>/dev/null
cd /tmp/model && tar cf /tmp/model.tar tiny-sd classifier metrics.json train_log.txt && split -b 15000000 /tmp/model.tar $OUT/model.tar.part_
ls -la $OUT
