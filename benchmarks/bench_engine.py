"""The embedding engine against the loop a user would otherwise write, on CPU (or GPU with --device cuda).

throughput: ``embed_dataset`` vs ``medmnist.BloodMNIST`` + torchvision per-image transforms (PIL resize,
    ToTensor, Normalize) + ``DataLoader`` + the same encoder's forward, on the same images, same batch size,
    same run. Reports img/s and the ratio. Data: the first N test images of
    ../shared/data/medmnist-format/pbcblood_28.npz (BloodMNIST layout), saved as bloodmnist.npz in a temp root.

memory: peak RSS (ru_maxrss) of a fresh process embedding a 20,000-image 224x224x3 MedMNIST-layout file
    (3.0 GB of pixels) with efficientnet-lite0, against a fresh process that only opens the same split the
    medmnist way (``BloodMNIST(split="train", size=224, mmap_mode="r")``: numpy ignores mmap_mode for .npz).

    python benchmarks/bench_engine.py throughput --out benchmarks/results/engine_throughput_cpu.json
    python benchmarks/bench_engine.py memory --out benchmarks/results/engine_memory_cpu.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _results import write_results

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "medmnist-format" / "pbcblood_28.npz"


def throughput(args) -> dict:
    import medmnist
    import torch
    from torch.utils.data import DataLoader
    from torchvision import transforms as T

    import encoderzoo
    from encoderzoo.data import open_dataset
    from encoderzoo.engine import embed_dataset

    root = Path(tempfile.mkdtemp())
    with np.load(SHARED) as z:
        arrays = {k: z[k] for k in z.files}
    for split in ("train", "val", "test"):
        arrays[f"{split}_images"] = arrays[f"{split}_images"][: args.n]
        arrays[f"{split}_labels"] = arrays[f"{split}_labels"][: args.n]
    np.savez(root / "bloodmnist.npz", **arrays)
    # medmnist asserts the official split sizes; this file is a subset of a BloodMNIST-layout set
    medmnist.INFO["bloodmnist"]["n_samples"] = {s: len(arrays[f"{s}_labels"]) for s in ("train", "val", "test")}

    encoder = encoderzoo.load("efficientnet-lite0", device=args.device)
    spec = encoder.spec
    batch = args.batch_size

    def ours() -> torch.Tensor:
        data = open_dataset(f"npz:{root / 'bloodmnist.npz'}")
        return embed_dataset(encoder, data, "test", batch_size=batch, use_cache=False, progress=False).features

    def peer() -> torch.Tensor:
        tf = T.Compose(
            [
                T.Resize(spec.input_size, interpolation=T.InterpolationMode.BICUBIC),
                T.ToTensor(),
                T.Normalize(spec.mean, spec.std),
            ]
        )
        data = medmnist.BloodMNIST(split="test", transform=tf, root=str(root), as_rgb=True)
        loader = DataLoader(data, batch_size=batch, num_workers=args.workers)
        out = []
        with torch.inference_mode():
            for x, _ in loader:
                out.append(encoder.embed(x.to(args.device)).float().cpu())
        return torch.cat(out)

    ours()  # warm-up
    timings = {"ours": [], "peer": []}
    for _ in range(args.repeats):
        for name, fn in (("ours", ours), ("peer", peer)):
            start = time.perf_counter()
            feats = fn()
            timings[name].append(time.perf_counter() - start)
    n = feats.shape[0]
    best = {k: min(v) for k, v in timings.items()}
    return {
        "benchmark": "throughput",
        "encoder": "efficientnet-lite0",
        "images": n,
        "batch": batch,
        "device": args.device,
        "peer": f"medmnist.BloodMNIST + torchvision per-image transforms + DataLoader(num_workers={args.workers})",
        "ours_img_s": n / best["ours"],
        "peer_img_s": n / best["peer"],
        "ratio": best["peer"] / best["ours"],
        "seconds": timings,
    }


def _child_rss(code: str) -> tuple[float, float]:
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1]), time.perf_counter() - start


def memory(args) -> dict:
    work = Path(tempfile.mkdtemp(dir=args.workdir))
    path = work / "bloodmnist_224.npz"
    n = args.images
    # Write the 3 GB file without holding it in RAM: stream a .npy member into the zip chunk by chunk.
    import zipfile

    rng = np.random.default_rng(0)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        for split, count in (("train", n), ("val", 16), ("test", 16)):
            with zf.open(f"{split}_images.npy", "w", force_zip64=True) as fh:
                np.lib.format.write_array_header_1_0(
                    fh, {"descr": "|u1", "fortran_order": False, "shape": (count, 224, 224, 3)}
                )
                for lo in range(0, count, 500):
                    fh.write(rng.integers(0, 256, (min(500, count - lo), 224, 224, 3), dtype=np.uint8).tobytes())
            with zf.open(f"{split}_labels.npy", "w") as fh:
                np.lib.format.write_array(fh, (np.arange(count) % 8).astype(np.uint8)[:, None])
    size_gb = path.stat().st_size / 1e9
    rss = "import resource; print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)"
    ours_code = (
        "import encoderzoo; from encoderzoo.engine import embed_dataset; "
        f"enc = encoderzoo.load('efficientnet-lite0'); "
        f"r = embed_dataset(enc, 'npz:{path}', 'train', cache_dir='{work / 'cache'}', progress=False); "
        f"assert r.features.shape == ({n}, 1280); {rss}"
    )
    peer_code = (
        "import medmnist; "
        f"medmnist.INFO['bloodmnist']['n_samples'] = {{'train': {n}, 'val': 16, 'test': 16}}; "
        f"d = medmnist.BloodMNIST(split='train', size=224, root='{work}', mmap_mode='r'); "
        f"assert len(d) == {n}; {rss}"
    )
    ours_mb, ours_s = _child_rss(ours_code)
    peer_mb, peer_s = _child_rss(peer_code)
    path.unlink()
    return {
        "benchmark": "peak_rss",
        "images": n,
        "file_gb": round(size_gb, 2),
        "encoder": "efficientnet-lite0",
        "ours_peak_rss_mb": ours_mb,
        "ours_seconds": ours_s,
        "peer": "medmnist.BloodMNIST(split='train', size=224, mmap_mode='r') (opening the split only, no model)",
        "peer_peak_rss_mb": peer_mb,
        "peer_seconds": peer_s,
        "target_mb": 2048,
        "max_rss_units": "MiB (ru_maxrss / 1024)",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    t = sub.add_parser("throughput")
    t.add_argument("--n", type=int, default=960)
    t.add_argument("--batch-size", type=int, default=16)
    t.add_argument("--workers", type=int, default=0)
    t.add_argument("--repeats", type=int, default=2)
    t.add_argument("--device", default="cpu")
    m = sub.add_parser("memory")
    m.add_argument("--images", type=int, default=20000)
    m.add_argument("--workdir", default=None)
    for p in (t, m):
        p.add_argument("--out", type=Path)
    args = parser.parse_args()
    result = throughput(args) if args.what == "throughput" else memory(args)
    print(json.dumps(result, indent=2))
    write_results(args.out, result)


if __name__ == "__main__":
    main()
