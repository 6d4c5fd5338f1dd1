"""A compiler pass that drops matrix products by a constant zero tensor.

Forward-mode AD (``torch.func.jvp``, MeanFlow's step) differentiates every linear layer as
``x_t @ W.T + x @ W_t.T``. The weights are constant inside the JVP, so ``W_t`` is zero, yet PyTorch
materialises it and the compiled graph multiplies by it: one wasted matrix product per layer,
as many FLOPs as the forward pass's linear layers. This pass, run by inductor on the traced
graph (``post_grad_custom_pre_pass``), replaces every ``mm`` / ``bmm`` whose operand is a constant
zero (a ``full(..., 0)``, possibly expanded, viewed or transposed) by zeros of its shape; the sums
that added it fuse into the neighbouring pointwise kernels. The result is the same (a product by
zero is zero) except where the other operand holds an infinity or NaN, which the dropped product
would have turned into NaN.

:class:`SkipMadeZeroProducts` is the same rule for an eager step under a dispatch mode (e.g. a
FLOP count of the work the compiled step does): products by a zero tensor made during the step
return zeros without running.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from torch._inductor.custom_graph_pass import CustomGraphPass
from torch.utils._python_dispatch import TorchDispatchMode

__all__ = ["DropZeroProducts", "SkipMadeZeroProducts", "is_constant_zero"]

aten = torch.ops.aten
PRODUCTS = (aten.mm.default, aten.bmm.default)
# ops that keep "every element is zero": shape changes of a zero tensor
SHAPE_OPS = (
    aten.expand.default,
    aten.permute.default,
    aten.t.default,
    aten.view.default,
    aten.reshape.default,
    aten.unsqueeze.default,
    aten.squeeze.dim,
    aten.clone.default,
    aten._to_copy.default,
)


def is_constant_zero(node) -> bool:
    """Whether the FX ``node`` is a tensor all of whose elements are the constant 0."""
    if not isinstance(node, torch.fx.Node) or node.op != "call_function":
        return False
    if node.target in (aten.full.default,):
        return node.args[1] == 0
    if node.target in (
        aten.zeros.default,
        aten.zeros_like.default,
        aten._efficientzerotensor.default,
    ):
        return True
    if node.target in SHAPE_OPS:
        return is_constant_zero(node.args[0])
    return False


class DropZeroProducts(CustomGraphPass):
    """``mm(a, b)`` / ``bmm(a, b)`` with a constant-zero operand becomes ``zeros`` of its shape."""

    def __call__(self, graph: torch.fx.Graph) -> None:
        for node in list(graph.nodes):
            if node.op != "call_function" or node.target not in PRODUCTS:
                continue
            if not any(is_constant_zero(a) for a in node.args[:2]):
                continue
            out = node.meta.get("val")
            if out is None:  # no shape to give the zeros: leave the product
                continue
            with graph.inserting_before(node):
                zeros = graph.call_function(
                    aten.full.default,
                    (list(out.shape), 0),
                    {"dtype": out.dtype, "layout": torch.strided, "device": out.device,
                     "pin_memory": False},
                )  # fmt: skip
            zeros.meta["val"] = out.new_zeros(out.shape)
            node.replace_all_uses_with(zeros)
            graph.erase_node(node)
        graph.eliminate_dead_code()

    def uuid(self):  # inductor's cache key: this file's code
        return hashlib.sha256(Path(__file__).read_bytes()).hexdigest()


ZERO_MAKERS = (aten.zeros.default, aten.zeros_like.default)  # (a ZeroTensor has no storage:
# forward-mode AD's efficient zeros reach a product through ``zeros``, which is tracked)


def _storage(a: torch.Tensor) -> int | None:
    try:
        return a.untyped_storage().data_ptr()
    except RuntimeError:  # no storage (a ZeroTensor, a meta tensor)
        return None


class SkipMadeZeroProducts(TorchDispatchMode):
    """Inside it, ``mm`` / ``bmm`` by a tensor that an op of ``ZERO_MAKERS`` made inside it (or a
    view of one: forward-mode AD's zero tangents of the weights) return zeros without running.
    Parameters that happen to be zero (adaLN-Zero's layers) are products like any other."""

    def __init__(self):
        super().__init__()
        self.zeros: list[torch.Tensor] = []  # kept alive, so that no other tensor reuses a storage
        self.storages: set[int] = set()  # theirs, shared by their views
        self.skipped = 0

    def _made_zero(self, a) -> bool:
        return isinstance(a, torch.Tensor) and _storage(a) in self.storages

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in PRODUCTS and any(self._made_zero(a) for a in args[:2]):
            a, b = args[:2]
            self.skipped += 1
            return a.new_zeros((*a.shape[:-1], b.shape[-1]))
        out = func(*args, **kwargs)
        if func in ZERO_MAKERS and _storage(out) is not None:
            self.zeros.append(out)
            self.storages.add(_storage(out))
        return out
