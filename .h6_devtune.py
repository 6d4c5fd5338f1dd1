"""Run ablation grids for several base settings in parallel (1 thread per process)."""
import json, os, sys, time
from concurrent.futures import ProcessPoolExecutor
import torch

GROUPS = {
    "k": {"0 (FM)": {"method": "flow_matching"}, "1/8": {"bootstrap_fraction": 0.125}, "1/4": {}, "1/2": {"bootstrap_fraction": 0.5}},
    "targets": {"online": {}, "ema": {"target_weights": "ema"}},
    "level": {"learned": {}, "sin_level": {"level_embedding": "sin_level"}, "sin_d": {"level_embedding": "sin_d"}},
    "t": {"grid": {}, "uniform": {"t_sampling": "uniform"}},
    "wd": {"0.1": {}, "0.0": {"weight_decay": 0.0}},
}

def job(args):
    name, base_kw, group, variant, changes, seed = args
    torch.set_num_threads(1)
    from shortcut_mini import TrainConfig
    from shortcut_mini.ablation import run_ablation
    base = TrainConfig(**base_kw)
    t = time.time()
    r = run_ablation(base, {group: {variant: changes}}, seeds=(seed,), steps=(1, 2, 4, 8, 128), n_eval=4096)
    return name, group, variant, seed, {s: r.mean(group, variant, s) for s in r.steps}, r.train_seconds[(group, variant, seed)], time.time() - t

if __name__ == "__main__":
    cands = json.loads(sys.argv[1])
    seeds = json.loads(sys.argv[2]) if len(sys.argv) > 2 else [0, 1, 2]
    jobs = []
    seen = set()
    for name, kw in cands.items():
        base = dict(data="checkerboard", model="mlp-small", n_data=20000, device="cpu", progress=False, log_every=0, ckpt_every=0, **kw)
        for seed in seeds:
            for g, vs in GROUPS.items():
                for v, ch in vs.items():
                    key = (name, json.dumps(ch, sort_keys=True), seed)
                    if key in seen: continue
                    seen.add(key)
                    jobs.append((name, base, g, v, ch, seed))
    out = []
    t0 = time.time()
    with ProcessPoolExecutor(int(os.environ.get("NPROC", 16))) as ex:
        for res in ex.map(job, jobs):
            out.append(res)
    print(f"total {time.time()-t0:.0f}s for {len(jobs)} runs")
    os.makedirs(os.environ.get("OUT", "/tmp/out"), exist_ok=True)
    json.dump(out, open(os.path.join(os.environ.get("OUT", "/tmp/out"), "res.json"), "w"))
    import numpy as np
    from collections import defaultdict
    agg = defaultdict(list)
    for name, g, v, seed, d, ts, tw in out:
        agg[(name, g, v)].append((d, ts))
    for (name, g, v), lst in agg.items():
        cells = []
        for s in ("1", "2", "4", "8", "128"):
            vals = [d[int(s)] for d, _ in lst]
            cells.append(f"{s}:{np.mean(vals):.3f}±{np.std(vals, ddof=1) if len(vals)>1 else 0:.3f}")
        print(f"{name:10s} {g:8s} {v:10s} " + " ".join(cells) + f"  t={np.mean([t for _, t in lst]):.1f}s")
