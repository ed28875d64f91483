"""bfloat16 against float32 on a GPU, at the paper's PTB setting (DReG 16, KL), for issue 19's question of
whether bfloat16 autocast moves the NLL the paper measures: (1) the training loss of one model on the same
batches and noise under bfloat16 autocast and in float32; (2) two 1500-step runs, one per precision, each
evaluated in float32 (K = 100, validation split). NOTES.md has the figures of its one run on an H200.

    PYTHONPATH=src OUT=runs/bf16 python3 benchmarks/gpu_bf16.py
"""

import json
import os
import time

import torch

from micmco.experiment import run
from micmco.runconfig import load_config
from micmco.runtime import numerics, to_device
from micmco.tasks import get_task

out = os.environ.get("OUT", "runs/bf16")
res = {}
base = "params/ptb/paper/ptb-base-dreg.yaml"
common = ["profile=custom", "train.checkpoint_every=0", "train.progress=false", "eval.split=valid"]
cfg = load_config(base, common + ["train.steps=300", f"output_dir={out}/runs"])
task = get_task(cfg.task)
dev = torch.device("cuda")
model = task.build_model(cfg).to(dev)
loss = task.build_loss(cfg)
data = task.training_data(cfg)
diffs = []
with numerics("float32", dev):
    for step in range(8):
        batch = to_device(data(step), dev)
        vals = []
        for bf16 in (False, True):
            gen = torch.Generator(device=dev).manual_seed(1000 + step)
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
                value, _ = loss(model, batch, gen)
            vals.append(float(value.detach()))
        diffs.append(vals[1] - vals[0])
res["loss_bf16_minus_f32_per_sentence"] = diffs
res["abs_max"] = max(abs(d) for d in diffs)
print(json.dumps(res), flush=True)
for precision in ("float32", "bfloat16"):
    c = load_config(base, common + ["train.steps=1500", f"train.precision={precision}", f"output_dir={out}/runs"])
    t = time.time()
    rec = run(c, echo=lambda m: None)
    metrics = rec["metrics"]
    res[precision] = {"nll": metrics["nll"], "mi": metrics["mutual_information"], "wall_s": round(time.time() - t, 1)}
    print(precision, res[precision], flush=True)
res["nll_bf16_minus_f32"] = res["bfloat16"]["nll"] - res["float32"]["nll"]
print(json.dumps(res), flush=True)
with open(f"{out}/bf16.json", "w") as file:
    file.write(json.dumps(res, indent=1))
