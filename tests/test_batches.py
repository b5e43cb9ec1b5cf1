"""The one batch reader of the engine and the training loop: read-ahead order and errors, and the autocast rule."""

from __future__ import annotations

import threading
from contextlib import nullcontext
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from encoderzoo.batches import autocast_for, first_tensor, read_ahead


def test_read_ahead_yields_every_item_in_order_with_its_batch():
    items = [(0, 3), (3, 6), (6, 7)]
    assert list(read_ahead(lambda b: list(range(*b)), items)) == [
        ((0, 3), [0, 1, 2]),
        ((3, 6), [3, 4, 5]),
        ((6, 7), [6]),
    ]
    assert list(read_ahead(lambda b: b, [])) == []


def test_the_next_batch_is_read_while_the_caller_works_on_this_one():
    started: dict[int, threading.Event] = {i: threading.Event() for i in range(3)}

    def read(i: int) -> int:
        started[i].set()
        return i * 10

    for i, batch in read_ahead(read, [0, 1, 2]):
        assert batch == i * 10
        if i + 1 < 3:  # the read of the next item began before this one's work is done
            assert started[i + 1].wait(timeout=5)
        else:
            assert all(event.is_set() for event in started.values())


def test_a_read_error_is_raised_where_its_batch_is_due():
    def read(i: int) -> int:
        if i == 2:
            raise OSError("image 2 cannot be read")
        return i

    seen = []
    with pytest.raises(OSError, match="image 2"):
        for _, batch in read_ahead(read, [0, 1, 2, 3]):
            seen.append(batch)
    assert seen == [0, 1]


class _Placed(nn.Module):
    """Reports a first tensor on ``device`` in ``dtype`` (no CUDA needed to check the rule)."""

    def __init__(self, device: str, dtype: torch.dtype) -> None:
        super().__init__()
        self.where = SimpleNamespace(device=torch.device(device), dtype=dtype)

    def parameters(self, recurse: bool = True):
        yield self.where


@pytest.mark.filterwarnings("ignore:CUDA is not available")
def test_autocast_is_bf16_only_for_float32_weights_on_cuda():
    on_cuda = autocast_for(_Placed("cuda", torch.float32))
    assert isinstance(on_cuda, torch.autocast) and on_cuda.fast_dtype == torch.bfloat16
    for module, enabled in (
        (_Placed("cuda", torch.float32), False),
        (_Placed("cuda", torch.bfloat16), True),
        (_Placed("cuda", torch.float16), True),
        (_Placed("cpu", torch.float32), True),
    ):
        assert isinstance(autocast_for(module, enabled), nullcontext)


def test_first_tensor_falls_back_to_a_buffer_for_parameter_free_modules():
    module = nn.Module()
    module.register_buffer("anchor", torch.zeros(2, dtype=torch.float64))
    assert first_tensor(module) is module.anchor
    linear = nn.Linear(2, 2)
    assert first_tensor(linear) is linear.weight
