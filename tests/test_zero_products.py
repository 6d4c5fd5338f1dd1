"""The compiler pass that drops matrix products by a constant zero (``shortcut_mini.zero_products``):
it recognises the zero operands forward-mode AD leaves in a JVP, and MeanFlow's compiled step
computes one matrix product less per linear layer with the same loss and gradients."""

from __future__ import annotations

import torch
from torch._inductor.utils import run_and_get_code

from shortcut_mini.models import build_model
from shortcut_mini.objectives import MEANFLOW_SETTINGS, MeanFlow
from shortcut_mini.speed import compile_for_training, drops_zero_products
from shortcut_mini.zero_products import DropZeroProducts, SkipMadeZeroProducts, is_constant_zero

aten = torch.ops.aten


def test_constant_zeros_are_recognised_through_shape_ops_and_nothing_else():
    g = torch.fx.Graph()
    x = g.placeholder("x")
    zero = g.call_function(aten.full.default, ([], 0))
    one = g.call_function(aten.full.default, ([], 1))
    wide = g.call_function(aten.expand.default, (zero, [4, 4]))
    turned = g.call_function(aten.permute.default, (wide, [1, 0]))
    assert is_constant_zero(zero) and is_constant_zero(wide) and is_constant_zero(turned)
    assert not is_constant_zero(one) and not is_constant_zero(x)
    assert not is_constant_zero(g.call_function(aten.expand.default, (one, [4, 4])))
    assert not is_constant_zero(g.call_function(aten.mul.Tensor, (wide, x)))


def extern_products(code: str) -> int:
    return sum("extern_kernels." in line and "mm(" in line for line in code.splitlines())


def compiled_step(net, model, objective, x1, seed):
    model.zero_grad(set_to_none=True)
    out = objective.loss(net, x1, None, generator=torch.Generator().manual_seed(seed))
    out.loss.backward()
    return out.loss.detach(), [p.grad.clone() for p in model.parameters()]


def test_meanflows_compiled_step_skips_the_weights_zero_tangents_with_the_same_result():
    """inductor on the CPU: the pass (``compile_for_training``) against plain ``torch.compile``."""
    assert drops_zero_products()  # this torch has inductor's custom graph passes
    torch.manual_seed(0)
    model = build_model("dit-tiny", sample_shape=(1, 8, 8), level_embedding="sin_d")
    with torch.no_grad():  # adaLN-Zero's zero layers would hide a difference
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape))
    model.blocks = model.blocks[:1]
    x1 = torch.randn(16, 1, 8, 8)
    objective = MeanFlow(attention="math", **MEANFLOW_SETTINGS["cifar10"])
    results, products = [], []
    for compiled in (
        torch.compile(objective.training_network(model), dynamic=False),
        compile_for_training(objective.training_network(model), None),
    ):
        result, code = run_and_get_code(compiled_step, compiled, model, objective, x1, 3)
        results.append(result)
        products.append(extern_products("\n".join(code)))
    (loss_plain, grads_plain), (loss_pass, grads_pass) = results
    assert torch.equal(loss_plain, loss_pass)
    for a, b in zip(grads_plain, grads_pass):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-7)
    linears = sum(isinstance(m, torch.nn.Linear) for m in model.modules())
    assert products[0] - products[1] == linears, products  # one per linear layer
    assert products[1] > 0  # the real products stay


def test_the_eager_count_skips_the_zero_tangents_but_not_zero_weights():
    """Under :class:`SkipMadeZeroProducts` a FLOP count sees what the compiled step computes: a
    JVP of a linear layer is two products (primal, input tangent), not three; a layer whose
    weights are zero (adaLN-Zero) still counts, and the results are unchanged."""
    from torch.utils.flop_counter import FlopCounterMode

    layer = torch.nn.Linear(16, 8, bias=False)
    x, v = torch.randn(4, 16), torch.randn(4, 16)
    one = 2 * 4 * 16 * 8

    def count(fn, skip):
        mode = SkipMadeZeroProducts() if skip else None
        with FlopCounterMode(display=False) as counter:
            if mode is None:
                out = fn()
            else:
                with mode:
                    out = fn()
        return counter.get_total_flops(), out, mode.skipped if mode else 0

    jvp = lambda: torch.func.jvp(layer, (x,), (v,))  # noqa: E731
    assert count(jvp, skip=False)[0] == 3 * one
    flops, (u, du), skipped = count(jvp, skip=True)
    assert (flops, skipped) == (2 * one, 1)
    assert torch.allclose(u, layer(x)) and torch.allclose(du, v @ layer.weight.T)
    torch.nn.init.zeros_(layer.weight)
    assert count(lambda: layer(x), skip=True)[0] == one


def test_the_pass_has_a_stable_cache_key():
    assert DropZeroProducts().uuid() == DropZeroProducts().uuid()
