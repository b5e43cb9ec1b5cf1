"""The embedding engine: correct rows, cache reuse, resume after a kill, staleness, NaN guard, and
torch.distributed (gloo, 2 processes) giving the single-process result."""

from __future__ import annotations

import os
import socket

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

import encoderzoo
from encoderzoo.data import open_dataset
from encoderzoo.embeddings import EmbeddingSet
from encoderzoo.engine import NonFiniteEmbeddingError, embed_dataset, embed_splits, weights_fingerprint

from .datasets_fixtures import write_npz, write_png
from .helpers import randomize_, reorder_atol, sequential_layers

TINY = encoderzoo.get_spec("dinov2-small").tiny_variant()  # 28 px input


@pytest.fixture
def encoder():
    torch.manual_seed(0)
    return encoderzoo.load(TINY, pretrained=False)


@pytest.fixture
def npz(tmp_path):
    return write_npz(tmp_path / "data.npz", sizes=(45, 6, 9), shape=(28, 28))


class CountingDataset:
    """Wraps a dataset and counts the rows read; optionally dies after ``die_after`` rows."""

    def __init__(self, inner, die_after=None):
        self.inner, self.die_after, self.rows_read = inner, die_after, 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def read(self, split, start, stop):
        if self.die_after is not None and self.rows_read + (stop - start) > self.die_after:
            raise KeyboardInterrupt("simulated kill")
        self.rows_read += stop - start
        return self.inner.read(split, start, stop)


def _direct(encoder, dataset, split):
    """The reference: every image through transform + embed, one batch, no engine."""
    n = dataset.num_samples(split)
    with torch.no_grad():
        return encoder.embed(encoder.transform(dataset.read(split, 0, n)))


def test_rows_match_a_direct_forward(encoder, npz, tmp_path):
    dataset = open_dataset(f"npz:{npz}")
    result = embed_dataset(encoder, dataset, "train", batch_size=8, chunk_size=16, cache_dir=tmp_path / "c")
    assert result.features.shape == (45, 32)
    assert torch.allclose(result.features, _direct(encoder, dataset, "train"), atol=1e-5)
    assert np.array_equal(result.labels, dataset.labels("train")) and result.ids == dataset.sample_ids("train")
    meta = result.metadata
    assert meta["encoder"] == TINY.name and meta["split"] == "train" and meta["pooling"] == "cls"
    assert meta["dataset"] == f"npz:{npz}" and meta["encoderzoo_version"] == encoderzoo.__version__
    assert meta["preprocessing"]["fit"] == "resize" and meta["skipped"] == []


def test_cache_is_reused(encoder, npz, tmp_path):
    first = embed_dataset(encoder, open_dataset(f"npz:{npz}"), "test", cache_dir=tmp_path / "c")
    counting = CountingDataset(open_dataset(f"npz:{npz}"))
    second = embed_dataset(encoder, counting, "test", cache_dir=tmp_path / "c")
    assert counting.rows_read == 0 and torch.equal(first.features, second.features)


def test_resume_after_kill(encoder, npz, tmp_path):
    cache = tmp_path / "c"
    dying = CountingDataset(open_dataset(f"npz:{npz}"), die_after=20)
    with pytest.raises(KeyboardInterrupt):
        embed_dataset(encoder, dying, "train", batch_size=10, chunk_size=10, cache_dir=cache)
    chunks = list(cache.rglob("*.chunks/*.safetensors"))
    assert len(chunks) == 2  # rows 0-19 survived the kill
    resumed = CountingDataset(open_dataset(f"npz:{npz}"))
    result = embed_dataset(encoder, resumed, "train", batch_size=10, chunk_size=10, cache_dir=cache)
    assert resumed.rows_read == 25  # only rows 20-44 were computed again
    clean = embed_dataset(encoder, open_dataset(f"npz:{npz}"), "train", use_cache=False)
    assert torch.equal(result.features, clean.features)
    assert not list(cache.rglob("*.chunks"))  # merged and cleaned up


def test_changed_weights_or_data_never_reuse_the_cache(encoder, npz, tmp_path):
    cache = tmp_path / "c"
    before = embed_dataset(encoder, open_dataset(f"npz:{npz}"), "val", cache_dir=cache)
    with torch.no_grad():
        encoder.trunk.norm.weight.mul_(2.0)
    changed_encoder = embed_dataset(encoder, open_dataset(f"npz:{npz}"), "val", cache_dir=cache)
    assert not torch.allclose(before.features, changed_encoder.features)
    write_npz(npz, sizes=(45, 6, 9), shape=(28, 28), seed=99)  # same path, new content
    changed_data = embed_dataset(encoder, open_dataset(f"npz:{npz}"), "val", cache_dir=cache)
    assert not torch.allclose(changed_encoder.features, changed_data.features)
    assert len(list(cache.iterdir())) == 3


def _rewrite_keeping_size_and_mtime(path, write) -> None:
    """Rewrite ``path`` with ``write(path)``, then restore its mtime, as a sync tool or ``touch -r`` would."""
    before = path.stat()
    write(path)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = path.stat()
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)


def test_one_weight_off_the_old_sampling_stride_is_a_new_cache(encoder, npz, tmp_path):
    """The old fingerprint hashed every (numel // 256)-th value; a change at flat index 1 of a 4096-value matrix
    was invisible to it and the stale embeddings came back."""
    cache = tmp_path / "c"
    data = open_dataset(f"npz:{npz}")
    before = embed_dataset(encoder, data, "val", cache_dir=cache)
    weight = encoder.trunk.blocks[0].mlp.fc1.weight
    assert weight.numel() // 256 > 1  # index 1 lies off the old stride
    with torch.no_grad():
        weight.view(-1)[1] += 1.0
    after = embed_dataset(encoder, data, "val", cache_dir=cache)
    assert after.metadata["weights_fingerprint"] != before.metadata["weights_fingerprint"]
    assert torch.equal(after.features, embed_dataset(encoder, data, "val", use_cache=False).features)
    assert not torch.equal(after.features, before.features) and len(list(cache.iterdir())) == 2


def test_weights_fingerprint_sees_every_byte_in_every_dtype(encoder):
    """Against an independent reference: sha256 of each tensor's bytes as numpy stores them."""
    import hashlib

    for dtype in (torch.float32, torch.bfloat16, torch.float16):
        model = encoder.to(dtype)
        reference = hashlib.sha256()
        for name, tensor in model.state_dict().items():
            raw = tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes()
            reference.update(
                f"{name}|{tuple(tensor.shape)}|{tensor.dtype}|{hashlib.sha256(raw).hexdigest()}\n".encode()
            )
        assert weights_fingerprint(model) == reference.hexdigest()
        first = weights_fingerprint(model)
        with torch.no_grad():  # the smallest change a dtype allows, in the last value of the last tensor
            last = list(model.parameters())[-1].view(-1)
            last[-1] = torch.nextafter(last[-1], last[-1] + 1)
        assert weights_fingerprint(model) != first


def test_npz_rewritten_with_same_size_and_mtime_is_a_new_cache(encoder, npz, tmp_path):
    cache = tmp_path / "c"
    before = embed_dataset(encoder, open_dataset(f"npz:{npz}"), "val", cache_dir=cache)
    _rewrite_keeping_size_and_mtime(npz, lambda p: write_npz(p, sizes=(45, 6, 9), shape=(28, 28), seed=99))
    data = open_dataset(f"npz:{npz}")
    after = embed_dataset(encoder, data, "val", cache_dir=cache)
    assert torch.equal(after.features, embed_dataset(encoder, data, "val", use_cache=False).features)
    assert not torch.allclose(after.features, before.features)


def test_npz_edited_in_place_is_a_new_cache(encoder, npz, tmp_path):
    """Bytes of the first val image overwritten inside the file (the zip CRC is now stale), mtime restored."""
    cache = tmp_path / "c"
    data = open_dataset(f"npz:{npz}")
    before = embed_dataset(encoder, data, "val", cache_dir=cache)
    member = data.members["val_images"]

    def overwrite(path):
        with open(path, "r+b") as fh:
            fh.seek(member.offset)
            inverted = bytes(255 - b for b in fh.read(member.row_bytes))  # image 0
            fh.seek(member.offset)
            fh.write(inverted)

    _rewrite_keeping_size_and_mtime(npz, overwrite)
    after = embed_dataset(encoder, open_dataset(f"npz:{npz}"), "val", cache_dir=cache)
    assert not torch.allclose(after.features[0], before.features[0])
    assert torch.equal(after.features[1:], before.features[1:])


def test_folder_image_rewritten_with_same_size_and_mtime_is_a_new_cache(encoder, tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(3):  # BMP: uncompressed, so new pixels keep the file size
        Image.fromarray(rng.integers(0, 256, (28, 28), np.uint8)).save(tmp_path / f"{i}.bmp")
    (tmp_path / "labels.csv").write_text("path,split,label\n0.bmp,train,0\n1.bmp,train,1\n2.bmp,train,0\n")
    cache = tmp_path / "c"
    before = embed_dataset(encoder, open_dataset(f"folder:{tmp_path}"), "train", cache_dir=cache)
    new_pixels = rng.integers(0, 256, (28, 28), np.uint8)
    _rewrite_keeping_size_and_mtime(tmp_path / "1.bmp", lambda p: Image.fromarray(new_pixels).save(p))
    after = embed_dataset(encoder, open_dataset(f"folder:{tmp_path}"), "train", cache_dir=cache)
    assert not torch.allclose(after.features[1], before.features[1])
    assert torch.equal(after.features[[0, 2]], before.features[[0, 2]])


def test_embed_splits_hashes_the_weights_once(encoder, npz, tmp_path, monkeypatch):
    import encoderzoo.engine as engine

    calls = []
    real = engine.weights_fingerprint
    monkeypatch.setattr(engine, "weights_fingerprint", lambda m: calls.append(1) or real(m))
    data = open_dataset(f"npz:{npz}")
    sets = embed_splits(encoder, data, ["train", "val", "test"], cache_dir=tmp_path / "c")
    assert len(calls) == 1
    for split, result in sets.items():
        assert torch.equal(result.features, embed_dataset(encoder, data, split, use_cache=False).features)


def test_preprocessing_is_part_of_the_key(encoder, tmp_path):
    small = write_npz(tmp_path / "small.npz", sizes=(4, 2, 2), shape=(14, 14))
    resized = embed_dataset(encoder, open_dataset(f"npz:{small}"), "train", cache_dir=tmp_path / "c")
    padded = embed_dataset(encoder, open_dataset(f"npz:{small}"), "train", fit="pad", cache_dir=tmp_path / "c")
    assert padded.metadata["preprocessing"]["fit"] == "pad"
    assert not torch.allclose(resized.features, padded.features)


def test_pad_fit_is_the_medmnist_plus_canvas(encoder, tmp_path):
    """MedMNIST+ reference code: ToTensor, Normalize(mean, std), then Pad(fill=0): the border is the mean colour."""
    randomize_(encoder.trunk)  # timm's init (LayerScale 1e-5) would make the output almost blind to its input
    small = write_npz(tmp_path / "small.npz", sizes=(3, 1, 1), shape=(13, 13))
    dataset = open_dataset(f"npz:{small}")
    result = embed_dataset(encoder, dataset, "train", fit="pad", use_cache=False)
    images = torch.from_numpy(dataset.read("train", 0, 3)).double().div(255)[:, None].expand(-1, 3, -1, -1)
    mean = torch.tensor(TINY.mean, dtype=torch.float64).view(1, 3, 1, 1)
    std = torch.tensor(TINY.std, dtype=torch.float64).view(1, 3, 1, 1)
    canvas = torch.zeros(3, 3, 28, 28, dtype=torch.float64)
    canvas[:, :, 7:20, 7:20] = (images - mean) / std  # margin 15: 7 left/top, 8 right/bottom
    with torch.no_grad():
        expected = encoder.embed(canvas.float())
        black = encoder.embed(encoder.transform(torch.nn.functional.pad(images.float(), (7, 8, 7, 8))))
    assert torch.allclose(result.features, expected, atol=1e-5)
    assert (result.features - black).abs().max() > 0.1  # the old order: pad in pixel space, then normalize


def test_nan_features_name_the_batch(npz, tmp_path):
    broken = encoderzoo.load(TINY, pretrained=False)
    with torch.no_grad():
        broken.trunk.norm.bias.fill_(float("nan"))
    with pytest.raises(NonFiniteEmbeddingError, match=r"rows 0:8 of npz:.* train \(first: \['train/0'"):
        embed_dataset(broken, open_dataset(f"npz:{npz}"), "train", batch_size=8, use_cache=False)


def test_folder_with_corrupt_and_mixed_sizes(encoder, tmp_path):
    rng = np.random.default_rng(0)
    lines = ["path,split,label"]
    for i, shape in enumerate([(28, 28), (40, 30, 3), (28, 28), (28, 28)]):
        write_png(tmp_path / f"{i}.png", rng.integers(0, 256, shape, np.uint8))
        lines.append(f"{i}.png,train,{i % 2}")
    good = (tmp_path / "3.png").read_bytes()
    (tmp_path / "3.png").write_bytes(good[:30])
    (tmp_path / "labels.csv").write_text("\n".join(lines) + "\n")
    result = embed_dataset(encoder, open_dataset(f"folder:{tmp_path}?skip_corrupt=1"), "train", use_cache=False)
    assert result.ids == ["0.png", "1.png", "2.png"] and result.metadata["skipped"] == ["3.png"]
    assert result.labels.tolist() == [0, 1, 0]


def test_embedding_set_round_trip(encoder, npz, tmp_path):
    result = embed_dataset(encoder, open_dataset(f"npz:{npz}"), "val", use_cache=False)
    again = EmbeddingSet.load(result.save(tmp_path / "val.safetensors"))
    assert torch.equal(result.features, again.features) and again.ids == result.ids
    assert again.metadata["dataset_fingerprint"] == result.metadata["dataset_fingerprint"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _distributed_worker(rank, world, port, model_dir, data, cache, out):
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        enc = encoderzoo.load(f"local-dir:{model_dir}")
        result = embed_dataset(
            enc, open_dataset(f"npz:{data}"), "train", batch_size=4, chunk_size=7, cache_dir=cache, progress=False
        )
        result.save(f"{out}/rank{rank}.safetensors")
    finally:
        dist.destroy_process_group()


def test_distributed_gloo_two_processes_equal_single_process(encoder, npz, tmp_path):
    model_dir = encoderzoo.save_pretrained(encoder, tmp_path / "model")
    mp.spawn(
        _distributed_worker,
        args=(2, _free_port(), str(model_dir), str(npz), str(tmp_path / "c"), str(tmp_path)),
        nprocs=2,
        join=True,
    )
    single = embed_dataset(encoder, open_dataset(f"npz:{npz}"), "train", use_cache=False)
    for rank in range(2):
        shard_run = EmbeddingSet.load(tmp_path / f"rank{rank}.safetensors")
        assert shard_run.ids == single.ids
        # other batch compositions may take other kernels: equal up to float32 reordering
        atol = reorder_atol(single.features, sequential_layers(encoder))
        torch.testing.assert_close(shard_run.features, single.features, atol=atol, rtol=0)


@pytest.mark.slow
def test_torch_compile_gives_the_eager_result(encoder, npz):
    """compile=True (inductor on CPU, ~25 s to compile) must not change the embeddings."""
    dataset = open_dataset(f"npz:{npz}")
    compiled = embed_dataset(encoder, dataset, "val", compile=True, use_cache=False, progress=False, batch_size=8)
    eager = embed_dataset(encoder, dataset, "val", use_cache=False, progress=False, batch_size=8)
    assert torch.allclose(compiled.features, eager.features, atol=1e-5)


@pytest.mark.parametrize("batch_size", [8, 1])  # mixed inside one batch, and across batches
def test_pixels_on_mixed_gray_and_colour_images_is_a_clear_error(tmp_path, batch_size):
    """The pixels control keeps channels, so a folder mixing grayscale and RGB files cannot be one feature
    matrix: an InputError that says why and what to do, not torch.cat's size mismatch."""
    from encoderzoo.errors import InputError

    rng = np.random.default_rng(0)
    lines = ["path,split,label"]
    for i, shape in enumerate([(28, 28), (28, 28), (28, 28, 3)]):
        write_png(tmp_path / f"{i}.png", rng.integers(0, 256, shape, np.uint8))
        lines.append(f"{i}.png,train,{i % 2}")
    (tmp_path / "labels.csv").write_text("\n".join(lines) + "\n")
    pixels = encoderzoo.load("pixels@8")
    data = open_dataset(f"folder:{tmp_path}")
    with pytest.raises(InputError, match=r"pixels@8 keeps each image's channels.*mixes grayscale and colour"):
        embed_dataset(pixels, data, "train", batch_size=batch_size, use_cache=False)
    # through the cache, the gray and colour files in different chunks: the chunks' widths differ
    with pytest.raises(InputError, match=r"mixes grayscale and colour images \(parts of 64 and 192 features\)"):
        embed_dataset(pixels, data, "train", batch_size=1, chunk_size=2, cache_dir=tmp_path / "cache")


def test_pixels_on_gray_images_with_a_skipped_batch(tmp_path):
    """A batch whose images were all skipped (corrupt) has no width: an all-grayscale folder still embeds."""
    rng = np.random.default_rng(0)
    lines = ["path,split,label"]
    for i in range(4):
        write_png(tmp_path / f"{i}.png", rng.integers(0, 256, (28, 28), np.uint8))
        lines.append(f"{i}.png,train,{i % 2}")
    (tmp_path / "3.png").write_bytes((tmp_path / "3.png").read_bytes()[:30])
    (tmp_path / "labels.csv").write_text("\n".join(lines) + "\n")
    data = open_dataset(f"folder:{tmp_path}?skip_corrupt=1")
    for kwargs in ({"use_cache": False}, {"chunk_size": 3, "cache_dir": tmp_path / "cache"}):
        result = embed_dataset(encoderzoo.load("pixels@8"), data, "train", batch_size=3, **kwargs)
        assert result.features.shape == (3, 64) and result.metadata["skipped"] == ["3.png"]
