"""MeanFlow's jumping rows' error and its few-step samples, by the time embedding's scale (CPU).

The target ``v + d du/dt`` differentiates the network in ``t`` and ``d``. With DiT's features
of ``1000 t`` and ``1000 d`` (``--embedding sin_d``) the error of the ``d > 0`` rows
(``loss_mean``) grows without bound; with MeanFlow's own ``sin_d_unit`` (the default, ``t`` and
``d`` unscaled) it falls. Trains a small DiT on 8x8 digits (fp32, one thread), logs the losses
every ``--log`` steps as JSON lines, then prints the FD (classifier features, the package's
digits classifier) of 1-, 2- and 4-step samples against the test split.

    PYTHONPATH=$PWD python benchmarks/meanflow_time_scale.py --embedding sin_d --steps 300
    PYTHONPATH=$PWD python benchmarks/meanflow_time_scale.py --embedding sin_d_unit --steps 300
"""

import argparse
import json
import time

import torch

from shortcut_mini.data import load_dataset
from shortcut_mini.metrics import feature_stats, get_feature_extractor
from shortcut_mini.models.dit import DiT
from shortcut_mini.objectives.meanflow import MeanFlow

p = argparse.ArgumentParser()
p.add_argument("--data", default="digits")
p.add_argument("--steps", type=int, default=300)
p.add_argument("--batch", type=int, default=128)
p.add_argument("--lr", type=float, default=1e-3)
p.add_argument("--embedding", default="sin_d_unit")
p.add_argument("--hidden", type=int, default=64)
p.add_argument("--depth", type=int, default=4)
p.add_argument("--setting", default="cifar10")
p.add_argument("--bf16", action="store_true")
p.add_argument("--log", type=int, default=25)
p.add_argument("--n_eval", type=int, default=500)
p.add_argument("--seed", type=int, default=0)
a = p.parse_args()

torch.manual_seed(a.seed)
torch.set_num_threads(1)
ds = load_dataset(a.data)
C, H = ds.shape[0], ds.shape[1]
net = DiT(
    image_size=H, channels=C, hidden=a.hidden, depth=a.depth, heads=4, level_embedding=a.embedding
)
S = {
    "imagenet": dict(meanflow_ratio=0.25, meanflow_norm_p=1.0, meanflow_norm_eps=0.01),
    "cifar10": dict(meanflow_ratio=0.75, meanflow_norm_p=0.75, meanflow_norm_eps=1e-3),
}[a.setting]
obj = MeanFlow(**S)
opt = torch.optim.AdamW(net.parameters(), lr=a.lr, weight_decay=0.0)
g = torch.Generator().manual_seed(a.seed)
t0 = time.time()
acc = {}
for step in range(1, a.steps + 1):
    idx = torch.randint(len(ds), (a.batch,), generator=g)
    x1, _ = ds.batch(idx)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.bf16):
        out = obj.loss(net, x1, None, generator=g)
    opt.zero_grad(set_to_none=True)
    out.loss.backward()
    gn = torch.nn.utils.clip_grad_norm_(net.parameters(), 1e9)
    opt.step()
    dg = out.diagnostics
    for k in ("loss_adaptive", "loss_flow", "loss_mean"):
        v = dg[k]
        v = v[0] if isinstance(v, tuple) else v
        acc.setdefault(k, []).append(float(v))
    acc.setdefault("grad_norm", []).append(float(gn))
    if step % a.log == 0:
        row = {k: round(sum(v) / len(v), 4) for k, v in acc.items()}
        print(json.dumps({"step": step, **row, "s": round(time.time() - t0, 1)}), flush=True)
        acc = {}

# few-step sample quality: FD on the package's classifier features
net.eval()
ext = get_feature_extractor("classifier", dataset=a.data, device="cpu")
test = load_dataset(a.data, train=False)
real = feature_stats(ext, test.batch(torch.arange(min(len(test), a.n_eval)))[0])
res = {}
with torch.no_grad():
    gs = torch.Generator().manual_seed(123)
    x0 = torch.randn((a.n_eval, C, H, H), generator=gs)
    for n_steps in (1, 2, 4):
        x = x0.clone()
        for i in range(n_steps):
            t = torch.full((a.n_eval,), i / n_steps)
            d = torch.full((a.n_eval,), 1 / n_steps)
            x = x + d.view(-1, 1, 1, 1) * net(x, t, d)
        fake = feature_stats(ext, x.clamp(-1, 1))
        res[n_steps] = round(fake.frechet_distance(real), 2)
print(json.dumps({"FD": res, "args": vars(a), "wall_s": round(time.time() - t0, 1)}))
