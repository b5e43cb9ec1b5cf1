"""Feeding batches to a model: the next batch is read on a background thread while the model works on the
current one, and one rule for autocast. The embedding engine and the adapters' training loop both read this way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from itertools import chain
from typing import TypeVar

import torch
from torch import nn

Item = TypeVar("Item")
Batch = TypeVar("Batch")


def first_tensor(module: nn.Module) -> torch.Tensor:
    """A parameter (or, for parameter-free modules such as the ``pixels`` control, a buffer): where and in which
    dtype ``module`` lives."""
    return next(chain(module.parameters(), module.buffers()))


def autocast_for(module: nn.Module, enabled: bool = True) -> AbstractContextManager:
    """bf16 autocast when ``enabled`` and ``module`` is on CUDA with float32 weights, else a no-op context."""
    tensor = first_tensor(module)
    if enabled and tensor.device.type == "cuda" and tensor.dtype == torch.float32:
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


def read_ahead(read: Callable[[Item], Batch], items: Sequence[Item]) -> Iterator[tuple[Item, Batch]]:
    """Yield ``(item, read(item))`` for each of ``items`` in order; ``read`` of the next item runs on a background
    thread while the caller works on the current one. An error in ``read`` is raised where its batch is due."""
    with ThreadPoolExecutor(max_workers=1) as reader:
        pending = reader.submit(read, items[0]) if items else None
        for k, item in enumerate(items):
            batch = pending.result()
            if k + 1 < len(items):
                pending = reader.submit(read, items[k + 1])
            yield item, batch
