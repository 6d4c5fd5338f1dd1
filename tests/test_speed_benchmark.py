"""benchmarks/speed.py in its CPU smoke version: the JSON schema, the equality check of the
optimised training step against a plain eager one, and the reference wrapper's interface."""

import json
import textwrap
from pathlib import Path

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"

# A stand-in for facebookresearch/DiT models.py with the interface the benchmark uses (the
# real file is never committed): DiT(...) with x_embedder, pos_embed, t_embedder, blocks,
# final_layer, unpatchify, y_embedder; TimestepEmbedder(hidden).
STAND_IN = textwrap.dedent(
    """
    import torch
    from torch import nn

    class TimestepEmbedder(nn.Module):
        def __init__(self, hidden_size):
            super().__init__()
            self.mlp = nn.Sequential(nn.Linear(1, hidden_size), nn.SiLU())

        def forward(self, t):
            return self.mlp(t[:, None].float() / 1000)

    class Patches(nn.Module):
        def __init__(self, size, patch, channels, hidden):
            super().__init__()
            self.proj = nn.Conv2d(channels, hidden, patch, stride=patch)

        def forward(self, x):
            return self.proj(x).flatten(2).transpose(1, 2)

    class Block(nn.Module):
        def __init__(self, hidden):
            super().__init__()
            self.lin = nn.Linear(hidden, hidden)

        def forward(self, x, c):
            return x + self.lin(x) * c[:, None]

    class Final(nn.Module):
        def __init__(self, hidden, patch, channels):
            super().__init__()
            self.lin = nn.Linear(hidden, patch * patch * channels)

        def forward(self, x, c):
            return self.lin(x + c[:, None])

    class DiT(nn.Module):
        def __init__(self, input_size, patch_size, in_channels, hidden_size, depth, num_heads,
                     mlp_ratio=4.0, class_dropout_prob=0.1, num_classes=1000, learn_sigma=True):
            super().__init__()
            self.c, self.p = in_channels, patch_size
            self.x_embedder = Patches(input_size, patch_size, in_channels, hidden_size)
            self.pos_embed = nn.Parameter(
                torch.zeros(1, (input_size // patch_size) ** 2, hidden_size), requires_grad=False
            )
            self.t_embedder = TimestepEmbedder(hidden_size)
            self.y_embedder = nn.Embedding(num_classes, hidden_size)
            self.blocks = nn.ModuleList(Block(hidden_size) for _ in range(depth))
            self.final_layer = Final(hidden_size, patch_size, in_channels)

        def unpatchify(self, x):
            n, tokens, _ = x.shape
            h = int(tokens ** 0.5)
            x = x.reshape(n, h, h, self.p, self.p, self.c)
            return torch.einsum("nhwpqc->nchpwq", x).reshape(n, self.c, h * self.p, h * self.p)
    """
)


@pytest.fixture
def speed(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import speed

    return speed


def test_smoke_run_writes_the_schema_and_the_steps_agree(speed, tmp_path):
    ref = tmp_path / "models.py"
    ref.write_text(STAND_IN)
    out = tmp_path / "speed.json"
    kernels = ["--meanflow-attention", "math", "matmul"]  # both pass an eager fp32 step
    doc = speed.main(["--smoke", "--out", str(out), "--reference", str(ref), *kernels])
    assert json.loads(out.read_text()) == json.loads(json.dumps(doc))
    assert set(speed.SCHEMA_KEYS) <= set(doc) and doc["device"] == "cpu"
    assert doc["bf16_peak_tflops"] > 0 and not list(out.parent.glob(".*.tmp"))
    train = doc["train"]
    for e in train:
        assert set(speed.TRAIN_KEYS) <= set(e)
        assert e["impl"] in ("project", "reference") and isinstance(e["compiled"], bool)
        assert e["img_per_s"] > 0 and e["tflops"] >= 0 and e["peak_mem_gb"] is None
    before = {(e["method"], e["variant"]) for e in train if e["variant"]}
    assert before == {
        ("flow_matching", speed.BEFORE),
        ("shortcut", speed.BEFORE),
        ("meanflow", speed.BEFORE_MEANFLOW),
    }
    kinds = {(e["impl"], e["method"], e["attention"]) for e in train if not e["variant"]}
    assert kinds == {
        (i, m, None) for i in ("project", "reference") for m in ("flow_matching", "shortcut")
    } | {("project", "meanflow", "math"), ("project", "meanflow", "matmul")}
    # the shortcut and MeanFlow steps do more work than the flow-matching step: more FLOPs
    flops = {(e["impl"], e["method"], e["variant"]): e["gflop_per_step"] for e in train}
    for impl in ("project", "reference"):
        assert flops[impl, "shortcut", None] > flops[impl, "flow_matching", None]
    # MeanFlow: one JVP pass costs more than a forward pass, less than the JVP and a forward
    one_pass, two_pass = (
        flops["project", "meanflow", None],
        flops["project", "meanflow", speed.BEFORE_MEANFLOW],
    )
    assert flops["project", "flow_matching", None] < one_pass < two_pass
    assert {(e["steps"], e["path"]) for e in doc["sampling"]} == {
        (1, "optimised"),
        (128, "optimised"),
        (1, "before: eager fp32"),
    }
    for e in doc["sampling"]:
        assert set(speed.SAMPLING_KEYS) <= set(e) and e["seconds"] > 0
    checks = {(c["method"], c["attention"], c["against"]) for c in doc["checks"]}
    assert checks == {
        ("flow_matching", None, "plain eager step"),
        ("shortcut", None, "plain eager step"),
        ("meanflow", "math", "two-pass step"),
        ("meanflow", "matmul", "two-pass step"),
    }
    for c in doc["checks"]:
        assert c["passed"] and c["loss_rel_err"] < 1e-5 and c["update_cosine"] > 0.9999, c
    text = speed.render(doc)
    assert "| dit-tiny | 1x8x8 | shortcut | reference | eager |" in text
    assert "| dit-tiny | eager, matmul attention | " in text  # MeanFlow in flow-matching steps


def test_auto_attention_times_meanflow_with_the_trainers_kernel_in_each_mode(speed):
    """By default MeanFlow is timed with the kernel the trainer uses: math compiled, matmul
    eagerly (the math kernel's eager bf16 backward fails on a GPU); named kernels are timed in
    every mode, each once."""

    def kernels(*argv):
        args = speed.parse_args(["--models", "dit-mini", "--methods", "meanflow", *argv])
        return [(c, a) for _, _, _, c, _, a in speed.train_configs(args, args.models, False)]

    assert kernels() == [(False, "matmul"), (True, "math"), (True, "math")]  # + CUDA graphs
    argv = ["--cudagraphs-on"]
    assert kernels(*argv) == [(False, "matmul"), (True, "math")]
    assert kernels(*argv, "--meanflow-attention", "math", "matmul") == [
        (c, a) for c in (False, True) for a in ("math", "matmul")
    ]
    assert kernels(*argv, "--meanflow-attention", "auto", "math", "--compiled", "yes") == [
        (True, "math")
    ]
    with pytest.raises(SystemExit):
        speed.parse_args(["--meanflow-attention", "flash"])


def test_check_fails_when_the_steps_differ(speed, tmp_path, monkeypatch):
    """The check is not vacuous: a plain step with another learning rate is caught."""
    import speed_checks
    import speed_steps

    plain = speed_steps.plain_step
    monkeypatch.setattr(speed_steps, "plain_step", lambda *a, **k: plain(*a, **{**k, "lr": 3e-4}))
    args = speed.parse_args(["--smoke", "--out", str(tmp_path / "s.json")])
    for method in ("shortcut", "meanflow"):
        result = speed_checks.equality_check(method, False, None, args, torch.device("cpu"))
        assert result["loss_rel_err"] == 0 and result["update_rel_err"] > 0.5
        assert not result["passed"]


def test_meanflow_check_fails_when_the_two_pass_step_differs(speed, tmp_path, monkeypatch):
    """The MeanFlow check compares with the two-pass step: a two-pass target with another
    derivative (the tangent of x flipped) is caught."""
    import speed_checks
    import speed_steps

    from shortcut_mini.models.dit import forward_ad_attention
    from shortcut_mini.objectives import meanflow

    class Flipped(meanflow.MeanFlowForward):
        def _jvp(self, x, t, d, y, w):
            ones = torch.ones_like(t)
            with forward_ad_attention("math"):
                u, dudt = torch.func.jvp(
                    lambda a, b, c: self.net(a, b, c, y), (x, t, d), (-w, ones, -ones)
                )
            return u, dudt.detach()

    original = speed_steps.two_pass_meanflow

    def flipped_two_pass():
        monkeypatch.setattr(meanflow, "MeanFlowForward", Flipped)
        return original()

    monkeypatch.setattr(speed_steps, "two_pass_meanflow", flipped_two_pass)
    args = speed.parse_args(["--smoke", "--out", str(tmp_path / "s.json")])
    result = speed_checks.equality_check("meanflow", False, None, args, torch.device("cpu"))
    assert result["loss_rel_err"] > 1e-4 and not result["passed"]


def test_budget_skips_and_says_so(speed, tmp_path):
    out = tmp_path / "speed.json"
    doc = speed.main(["--smoke", "--out", str(out), "--budget-s", "0", "--skip", "sampling"])
    assert doc["train"] == [] and doc["checks"] == []
    assert doc["skipped"] and all("budget" in s["why"] for s in doc["skipped"])
    methods = ["--methods", "flow_matching", "shortcut"]
    again = speed.main(
        ["--smoke", "--out", str(out), "--append", "--skip", "check", "sampling", *methods]
    )
    assert len(again["train"]) == 4 and again["skipped"] == []  # eager steps, now and before
    third = speed.main(
        ["--smoke", "--out", str(out), "--append", "--skip", "check", "sampling", *methods]
    )
    assert third["train"] == again["train"]  # nothing measured twice


def test_methods_must_be_registered(speed):
    with pytest.raises(SystemExit):
        speed.parse_args(["--smoke", "--methods", "no_such_method"])


def test_table_renders_a_written_file(speed, tmp_path):
    import speed_table

    doc = {
        "device": "X",
        "torch": "2",
        "commit": "abc",
        "bf16_peak_tflops": 100.0,
        "train": [
            {
                "model": "dit-b",
                "shape": [4, 32, 32],
                "method": "shortcut",
                "impl": "project",
                "compiled": True,
                "compile_mode": "reduce-overhead",
                "img_per_s": 2000.0,
                "tflops": 55.0,
                "peak_mem_gb": 10.0,
            }
        ],
        "sampling": [
            {
                "model": "dit-mini",
                "steps": 128,
                "n": 10000,
                "seconds": 12.8,
                "forward_only_seconds": 0.05,
            }
        ],
    }
    text = speed_table.render(doc)
    assert (
        "| dit-b | 4x32x32 | shortcut | project | compiled, reduce-overhead | 2,000 | 55.0 | 55 |"
        in text
    )
    assert "| dit-mini | 128 | 10,000 | optimised | 12.800 | 0.0500 | 2.00 |" in text
    assert "Measured in parts" not in text and "Failed:" not in text
    doc["parts"] = [
        {"rows": "dit-mini", "commit": "1234567890"},
        {"rows": "dit-b", "commit": "abcdef0"},
    ]
    doc["errors"] = [{"what": "train project dit-b meanflow attention math eager", "error": "E()"}]
    doc["not_measured"] = ["train reference dit-s shortcut eager"]
    text = speed_table.render(doc)
    assert "consecutively: dit-mini (commit 1234567); dit-b (commit abcdef0)." in text
    assert "Failed: train project dit-b meanflow attention math eager (E())" in text
    assert "Not measured: train reference dit-s shortcut eager" in text
    assert "Sampling" in text
    doc["sampling"] = []  # a run with --skip sampling: no empty table
    assert "Sampling" not in speed_table.render(doc)


@pytest.mark.parametrize(
    "page, record",
    [
        ("speed.md", "speed.json"),
    ],
)
def test_book_speed_tables_are_their_records_rendered(speed, page, record):
    """The results page includes these tables: each must be its committed record, rendered."""
    import speed_table

    root = Path(__file__).resolve().parent.parent
    doc = speed_table.load(root / "benchmarks" / "results" / record)
    rendered = speed_table.render(doc)
    assert (root / "book" / "results" / page).read_text().strip() == rendered.strip()
    assert "img/s" in rendered and doc["train"]


def test_diagnostic_steps_are_flow_matching_and_meanflow_steps_that_train(speed, tmp_path):
    """``benchmarks/step_kernels.py`` and ``cudagraph_skips.py`` (GPU diagnostics) time the
    steps ``warm_steps`` builds: here on the CPU, eager, at the smoke size, each a real step of
    its method that moves the model, each written to the record."""
    import step_kernels

    seen = []
    cpu = torch.device("cpu")
    for method, attention, step, args in step_kernels.warm_steps(
        "dit-tiny", None, cpu, argv=["--smoke"], warmup=1, compiled=False
    ):
        before = [p.detach().clone() for p in step.model.parameters()]
        step(1)
        after = [p.detach() for p in step.model.parameters()]
        moved = sum(float((a - b).abs().sum()) for a, b in zip(after, before))
        assert moved > 0 and args.batch == 8
        seen.append(dict(method=method, attention=attention, moved=moved))
    assert [(s["method"], s["attention"]) for s in seen] == step_kernels.VARIANTS
    step_kernels.write(seen, tmp_path / "r.json")
    assert json.loads((tmp_path / "r.json").read_text())[1]["method"] == "meanflow"


def test_meanflow_split_benchmark_times_both_passes_with_one_prediction(speed, tmp_path):
    """``benchmarks/meanflow_split_cpu.py --smoke``: both variants timed, the jumping rows a
    quarter of the batch, and the two passes give the same prediction."""
    import meanflow_split_cpu

    out = tmp_path / "split.json"
    argv = ["--out", str(out), "--smoke", "--reps", "1", "--rounds", "1"]
    assert meanflow_split_cpu.main(argv) == 0
    (case,) = json.loads(out.read_text())["cases"]
    assert case["jump_rows"] == 2 and case["every_row_ms"] > 0 and case["jumping_rows_ms"] > 0
    assert case["prediction_max_abs_diff"] < 1e-5


def test_meanflow_ratio_says_when_its_rows_come_from_two_machines(speed):
    """A record resumed on another machine (``parts``): a MeanFlow row measured there is compared
    with the first machine's flow-matching row, and the table says so; rows of one machine not."""
    import speed_table

    def row(method, img_per_s, compiled, part=None):
        mode = "reduce-overhead" if compiled else None
        entry = dict(model="dit-b", method=method, impl="project", compiled=compiled)
        entry |= dict(compile_mode=mode, img_per_s=img_per_s, attention=None, part=part)
        return entry if part else {k: v for k, v in entry.items() if k != "part"}

    doc = {
        "parts": [{"machine": "A"}, {"machine": "B"}],
        "train": [
            row("flow_matching", 3000.0, False),
            row("meanflow", 1500.0, False, part="B"),
            row("flow_matching", 4000.0, True),
            row("meanflow", 2000.0, True),
        ],
    }
    ratios = speed_table.meanflow_ratios(doc)
    assert [r["ratio"] for r in ratios] == [2.0, 2.0]
    assert ratios[0]["how"].endswith("(MeanFlow timed on machine B, flow matching on A)")
    assert "machine" not in ratios[1]["how"]
