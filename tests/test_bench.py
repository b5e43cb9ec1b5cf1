"""``encoderzoo speed`` (formerly ``bench``) on tiny random encoders: fields present and sane, FLOPs equal to a
hand count."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

import encoderzoo
from encoderzoo import bench
from encoderzoo.cli import app
from encoderzoo.errors import AttentionBackendError

TINY_ARGS = ["--device", "cpu", "--random-weights", "--warmup", "0", "--repeats", "2"]


def vit_flops(dim: int, depth: int, patches: int, prefix: int, patch: int, mlp_ratio: int = 4) -> int:
    """FLOPs of a pre-norm ViT forward counted by hand: 2 per multiply-add in every matrix product.

    Per block: qkv (T x D x 3D), q k^T and attn v (T x T x D each, summed over heads), the output projection
    (T x D x D), the MLP (T x D x rD, twice); plus the patch embedding (P x 3p^2 x D). Norms, softmax, GELU,
    LayerScale and the additions are elementwise and not counted.
    """
    t = patches + prefix
    block = 2 * t * dim * 3 * dim + 2 * 2 * t * t * dim + 2 * t * dim * dim + 2 * 2 * t * dim * mlp_ratio * dim
    return depth * block + 2 * patches * 3 * patch * patch * dim


@pytest.fixture()
def tiny_name():
    spec = encoderzoo.get_spec("dinov2-small").tiny_variant()  # D=32, depth 2, patch 14, 28 px: 2x2 patches
    encoderzoo.register(spec)
    yield spec.name
    encoderzoo.unregister(spec.name)


def test_cli_bench_json_fields_are_present_and_sane(tiny_name, tmp_path):
    result = CliRunner().invoke(
        app,
        ["speed", "--encoder", tiny_name, "--image-size", "28,42", "--batch-size", "3", *TINY_ARGS, "--format", "json"]
        + ["--out", str(tmp_path / "bench.json")],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report == json.loads((tmp_path / "bench.json").read_text())
    assert report["environment"]["command"].startswith(f"encoderzoo speed --encoder {tiny_name}")
    rows = report["results"]
    assert [r["image_size"] for r in rows] == [28, 42]
    for row, grid in zip(rows, (2, 3), strict=True):
        assert row["tokens"] == 1 + grid * grid
        assert row["flops_per_image"] == vit_flops(32, 2, grid * grid, 1, 14)
        assert row["batch_size"] == 3 and row["repeats"] == 2
        assert row["images_per_s"] > 0 and row["ms_per_batch"] > 0
        assert row["images_per_s"] == pytest.approx(3 / (row["ms_per_batch"] / 1000))
        assert row["ms_per_batch_min"] <= row["ms_per_batch"] <= row["ms_per_batch_max"]
        assert row["ms_per_batch"] == pytest.approx((row["ms_per_batch_min"] + row["ms_per_batch_max"]) / 2)  # median
        assert row["achieved_tflops"] == pytest.approx(row["flops_per_image"] * row["images_per_s"] / 1e12)
        assert row["peak_memory_mib"] is not None and row["peak_memory_mib"] >= 0
        assert row["share_of_peak"] is None and row["peak_tflops"] is None  # no known peak for a CPU
        assert row["weights"].startswith("random")
    assert rows[1]["native_image_size"] == 28


def test_table_output(tiny_name):
    result = CliRunner().invoke(app, ["speed", "-e", tiny_name, *TINY_ARGS, "--attention", "sdpa,math"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split()[:3] == ["encoder", "size", "tokens"]
    assert [line.split()[5] for line in lines[1:3]] == ["sdpa", "math"]


def test_flops_count_attention_whatever_kernel_is_timed():
    spec = encoderzoo.get_spec("dinov2-small").tiny_variant()
    encoder = encoderzoo.load(spec, pretrained=False, attention="sdpa")
    flops = bench.count_flops(encoder, torch.randn(1, 3, 28, 28))
    assert flops == vit_flops(32, 2, 4, 1, 14)
    assert encoder.attention == "sdpa"  # switched back after counting


def test_share_of_peak_uses_the_datasheet_figure(monkeypatch):
    monkeypatch.setattr(bench, "device_name", lambda device: "NVIDIA H100 80GB HBM3")
    spec = encoderzoo.get_spec("dinov2-small").tiny_variant()
    row = bench.bench_encoder(spec, pretrained=False, warmup=0, repeats=1)
    assert row["peak_tflops"] == 66.9  # float32: CUDA-core FP32 of the H100 SXM
    assert row["share_of_peak"] == pytest.approx(row["achieved_tflops"] / 66.9)
    assert "h100" in row["peak_source"].lower()


@pytest.mark.parametrize(
    ("name", "bf16"),
    [
        ("NVIDIA H100 80GB HBM3", 989.4),
        ("NVIDIA H100 PCIe", 756.5),
        ("NVIDIA H200", 989.4),
        ("NVIDIA A100-SXM4-80GB", 312.0),
        ("Tesla T4", None),
        ("NVIDIA H100 NVL", None),
    ],
)
def test_known_gpu_peaks(name, bf16):
    peak = bench.peak_flops(name)
    assert (peak.tflops["bfloat16"] if peak else None) == bf16


def test_cnn_rows_are_measured_once_without_attention_kernels():
    spec = encoderzoo.get_spec("efficientnet-lite0").tiny_variant()
    report = bench.run_bench([spec], attentions=("sdpa", "math"), pretrained=False, warmup=0, repeats=1)
    assert [r["attention"] for r in report["results"]] == ["n/a"]
    assert report["results"][0]["tokens"] is None and report["results"][0]["flops_per_image"] > 0


def test_unusable_kernel_fails_before_measuring(monkeypatch):
    def measured(*args, **kwargs):
        raise AssertionError("measured before every kernel was validated")

    monkeypatch.setattr(bench, "bench_encoder", measured)
    with pytest.raises(AttentionBackendError, match="xformers"):
        bench.run_bench(["dinov2-base"], attentions=("sdpa", "xformers"), pretrained=False)


def test_vs_timm_reports_a_ratio():
    spec = encoderzoo.get_spec("dinov2-small").tiny_variant()
    row = bench.bench_encoder(spec, pretrained=False, warmup=0, repeats=2, vs_timm=True)
    assert row["timm_images_per_s"] > 0
    assert row["ratio_vs_timm"] == pytest.approx(row["images_per_s"] / row["timm_images_per_s"])


def test_bad_size_is_a_clear_cli_error(tiny_name):
    result = CliRunner().invoke(app, ["bench", "-e", tiny_name, *TINY_ARGS, "--image-size", "30"])
    assert result.exit_code == 2 and "multiple of 14" in result.output


def test_bench_is_a_deprecated_alias_of_speed(tiny_name):
    result = CliRunner().invoke(app, ["bench", "-e", tiny_name, *TINY_ARGS, "--format", "json"])
    assert result.exit_code == 0, result.output
    assert "`encoderzoo bench` is deprecated" in result.stderr and "encoderzoo speed" in result.stderr
    assert json.loads(result.stdout)["results"][0]["images_per_s"] > 0
