"""The ``encoderzoo`` command: thin shims over the public API. Tables or JSON on stdout, errors on stderr."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Any

import typer

from .atomic import atomic_write
from .errors import EncoderZooError
from .paths import check_writable
from .registry import get_spec, list_encoders

USER_ERRORS = (EncoderZooError, ValueError, OSError)
"""What a user's input can cause: printed as one line (exit 2), with the traceback only under ``--debug``."""


class _Typer(typer.Typer):
    """Every command turns a user error into one line on stderr (exit 2); ``encoderzoo --debug`` re-raises it."""

    def command(self, *args: Any, **kwargs: Any) -> Callable[[Callable], Callable]:
        register = super().command(*args, **kwargs)

        def decorate(fn: Callable) -> Callable:
            @functools.wraps(fn)
            def guarded(*a: Any, **k: Any) -> Any:
                try:
                    return fn(*a, **k)
                except USER_ERRORS as err:
                    _fail(err)

            return register(guarded)

        return decorate


app = _Typer(help="Load, adapt and measure medical-imaging foundation encoders.", no_args_is_help=True)
_debug = False


@app.callback()
def _options(
    debug: bool = typer.Option(False, "--debug", help="show the full traceback of an error instead of one line"),
) -> None:
    global _debug
    _debug = debug


class OutputFormat(str, Enum):
    table = "table"
    json = "json"


def _fail(err: Exception) -> None:
    if _debug:
        raise err
    message = str(err).strip() or type(err).__name__
    if isinstance(err, KeyError) and message.startswith(("'", '"')):
        message = message[1:-1]  # KeyError quotes its message
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=2)


@app.command("methods")
def methods_command() -> None:
    """List the adaptation methods `encoderzoo adapt --method` takes, with their settings (`--set KEY=VALUE`)."""
    from .adapters.methods import methods_table

    typer.echo(methods_table())


@app.command("list")
def list_command(
    pattern: str = typer.Argument("*", help="shell-style wildcard, e.g. 'dinov2-*'"),
    format: OutputFormat = typer.Option(OutputFormat.table, "--format", "-f", help="table or json"),
) -> None:
    """List registered encoders."""
    from .cards import count_parameters

    names = list_encoders(pattern)
    rows = []
    for name in names:
        spec = get_spec(name)
        rows.append(
            {
                "name": name,
                "family": spec.family,
                "params_m": round(count_parameters(spec) / 1e6, 1),
                "input": spec.input_size,
                "pooling": spec.pooling,
                "dim": spec.output_dim,
                "licence": spec.licence,
                "gated": spec.gated,
            }
        )
    if format is OutputFormat.json:
        typer.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        typer.echo(f"no encoder matches {pattern!r}", err=True)
        raise typer.Exit(code=1)
    headers = list(rows[0])
    cells = [[str(r[h]) if not isinstance(r[h], bool) else ("yes" if r[h] else "no") for h in headers] for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]
    typer.echo("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    for c in cells:
        typer.echo("  ".join(v.ljust(w) for v, w in zip(c, widths, strict=True)).rstrip())


@app.command("info")
def info_command(
    name: str = typer.Argument(..., help="registry name"),
    format: OutputFormat = typer.Option(OutputFormat.table, "--format", "-f", help="table or json"),
) -> None:
    """Everything the registry knows about one encoder."""
    try:
        spec = get_spec(name)
    except EncoderZooError as err:
        _fail(err)
    data = spec.to_dict()
    data.pop("tiny")
    if format is OutputFormat.json:
        typer.echo(json.dumps(data, indent=2))
        return
    width = max(map(len, data))
    for key, value in data.items():
        if isinstance(value, dict) and key == "source":
            value = ", ".join(
                f"{k}={v if v is not None else 'never online'}"
                for k, v in value.items()
                if v is not None or k == "verified"
            )
        elif isinstance(value, list) and key == "notes":
            value = ("\n" + " " * (width + 2)).join(value)
        typer.echo(f"{key.ljust(width)}  {value}")


@app.command("card")
def card_command(name: str = typer.Argument(..., help="registry name")) -> None:
    """Print the model card of an encoder (markdown)."""
    from .cards import render_card

    try:
        typer.echo(render_card(get_spec(name)), nl=False)
    except EncoderZooError as err:
        _fail(err)


_METHOD_HELP = "adaptation method (`encoderzoo methods` lists every registered one with its settings)"
_IMAGE_SIZE_HELP = (
    "run the encoder at this input size (default: the spec's; e.g. 224 for DINOv2, whose native size is 518); "
    "ViT position embeddings are resampled as upstream does"
)
_DTYPES = {"float32": "float32", "bfloat16": "bfloat16", "float16": "float16"}


@app.command("embed")
def embed_command(
    encoder: str = typer.Option(..., "--encoder", "-e", help="registry name, hf-hub:org/repo or local-dir:PATH"),
    dataset: str = typer.Option(
        ..., "--dataset", "-d", help="medmnist:NAME[@SIZE], npz:PATH, folder:DIR, nih:DIR, chexpert:DIR"
    ),
    split: str = typer.Option("train,val,test", "--split", help="comma-separated splits"),
    out: Path | None = typer.Option(None, "--out", "-o", help="also write <out>/<split>.safetensors here"),
    device: str = typer.Option("auto", help="cpu, cuda, cuda:1 ... (auto: cuda when available)"),
    dtype: str = typer.Option("float32", help="float32, bfloat16 or float16"),
    attention: str = typer.Option("auto", help="auto, sdpa, xformers or math"),
    batch_size: int | None = typer.Option(None, help="default: 16 on CPU, 128 on CUDA"),
    fit: str = typer.Option("resize", help="resize, or pad (MedMNIST+ zero canvas)"),
    weights: Path | None = typer.Option(None, help="local copy of the encoder's canonical weight file"),
    image_size: int | None = typer.Option(None, "--image-size", help=_IMAGE_SIZE_HELP),
    revision: str | None = typer.Option(
        None, "--revision", help="registry entries: load the weights at this commit, branch or tag instead of the pin"
    ),
    format: OutputFormat = typer.Option(OutputFormat.table, "--format", "-f"),
) -> None:
    """Embed dataset splits (cached; a killed run resumes) and print where the embeddings are."""
    if dtype not in _DTYPES:
        raise ValueError(f"--dtype must be one of {list(_DTYPES)}, got {dtype!r}")
    _check_batch_size(batch_size)
    splits = [s.strip() for s in split.split(",") if s.strip()]
    if not splits:
        raise ValueError("--split names no split; give e.g. train,val,test")
    import time

    import torch

    from .data import open_dataset
    from .devices import resolve_device
    from .engine import embed_dataset
    from .loading import load

    resolved = resolve_device(device)
    try:
        if out:
            check_writable(out, folder=True)  # before any work: a bad --out must not cost an embedding run
        model = load(
            encoder,
            device=resolved,
            dtype=getattr(torch, dtype),
            attention=attention,
            weights=weights,
            image_size=image_size,
            revision=revision,
        )
        data = open_dataset(dataset)
        rows = []
        for name in splits:
            start = time.perf_counter()
            result = embed_dataset(model, data, name, batch_size=batch_size, fit=fit)  # type: ignore[arg-type]
            path = result.save(out / f"{name}.safetensors") if out else None
            rows.append(
                {
                    "split": name,
                    "n": len(result),
                    "dim": int(result.features.shape[1]),
                    "skipped": len(result.metadata["skipped"]),
                    "seconds": round(time.perf_counter() - start, 2),
                    "path": str(path) if path else None,
                }
            )
    except (EncoderZooError, ValueError, OSError) as err:
        _fail(err)
    if format is OutputFormat.json:
        typer.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        typer.echo(
            f"{r['split']:6s} n={r['n']:<7d} dim={r['dim']:<5d} skipped={r['skipped']:<4d} "
            f"{r['seconds']:8.2f}s  {r['path'] or '(cache only)'}"
        )


def _int_list(text: str, option: str = "the option") -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"{option} takes comma-separated whole numbers, got {text!r}") from None


def _check_batch_size(batch_size: int | None) -> None:
    if batch_size is not None and batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {batch_size}")


def _sizes(text: str) -> dict[str, int]:
    """``train=3000,test=500`` -> ``{"train": 3000, "test": 500}``."""
    sizes = {}
    for part in [p.strip() for p in text.split(",") if p.strip()]:
        split, sep, value = part.partition("=")
        if not sep or not value.strip().isdigit():
            raise ValueError(f"--max-samples takes split=N pairs, e.g. train=3000,test=500; got {part!r}")
        sizes[split.strip()] = int(value)
    return sizes


@app.command("probe")
def probe_command(
    encoder: str = typer.Option("efficientnet-lite0", "--encoder", "-e", help="registry name, hf-hub: or local-dir:"),
    dataset: str = typer.Option(
        "sample:pneumoniamnist",
        "--dataset",
        "-d",
        help="dataset spec (default: the 500-image sample bundled with encoderzoo)",
    ),
    test_dataset: str | None = typer.Option(
        None,
        "--test-dataset",
        help="external validation: fit on --dataset's train/val, score this dataset's test split over the labels "
        "both have (chest X-ray sets: the common vocabulary)",
    ),
    probes: str = typer.Option(
        "knn,linear",
        "--probes",
        "-p",
        help="comma-separated: knn, linear, fewshot, curation, zeroshot (image-text encoders; no training data), "
        "robustness (kNN/linear on MedMNIST-C corrupted test sets)",
    ),
    shots: str = typer.Option("1,5,10", help="few-shot sizes per class"),
    seeds: int = typer.Option(5, help="seeds for few-shot episodes and random curation baselines"),
    device: str = typer.Option("auto", help="cpu, cuda, cuda:1 ... (auto: cuda when available)"),
    batch_size: int | None = typer.Option(None, help="embedding batch size (default: 16 on CPU, 128 on CUDA)"),
    fit: str = typer.Option("resize", help="resize, or pad (MedMNIST+ zero canvas)"),
    format: OutputFormat = typer.Option(OutputFormat.table, "--format", "-f", help="table or json on stdout"),
    per_label: bool = typer.Option(False, "--per-label", help="also print AUROC per label (multi-label tasks)"),
    out: Path | None = typer.Option(None, "--out", "-o", help="also write the results as JSON to this file"),
    save_predictions: bool = typer.Option(
        False, "--save-predictions", help="also write predictions.npz beside results.json (ids, labels, probabilities)"
    ),
    plots: bool = typer.Option(
        False, "--plots", help="also write reliability diagrams (and accuracy vs severity) as PNGs beside results.json"
    ),
    coverage: float = typer.Option(0.9, "--coverage", help="target coverage of the conformal prediction sets"),
    conformal: str = typer.Option("lac,aps", "--conformal", help="conformal scores: lac, aps, raps (first: headline)"),
    corruptions: str | None = typer.Option(
        None, "--corruptions", help="robustness: MedMNIST-C preset (bloodmnist, pneumoniamnist...; auto for medmnist:)"
    ),
    severities: str = typer.Option("1,2,3,4,5", "--severities", help="robustness: corruption severities (1-5)"),
    max_samples: str | None = typer.Option(
        None, "--max-samples", help="run on a seeded, class-stratified subset, e.g. train=3000,val=800,test=400"
    ),
    image_size: int | None = typer.Option(None, "--image-size", help=_IMAGE_SIZE_HELP),
    revision: str | None = typer.Option(
        None, "--revision", help="registry entries: load the weights at this commit, branch or tag instead of the pin"
    ),
    templates: str | None = typer.Option(
        None,
        "--templates",
        help="zero-shot prompts: a JSON prompt file, or '|'-separated templates with {} for the label "
        "(default: the prompts shipped for the dataset)",
    ),
) -> None:
    """How good is an encoder on a dataset? Embeds (cached), probes, prints a table (results JSON with --out)."""
    from .probe_settings import check_probe_settings

    probe_list, shot_list = [p.strip() for p in probes.split(",") if p.strip()], _int_list(shots, "--shots")
    check_probe_settings(probe_list, shot_list, seeds, batch_size)  # before torch is even imported
    from .probe_job import results_table, run_probes
    from .trust import robustness_table, trust_table

    try:
        if (save_predictions or plots) and not out:
            raise ValueError("--save-predictions and --plots write beside results.json: give --out PATH too")
        if out:
            check_writable(out, folder=False)  # before any work: a bad --out must not cost an embedding run
        results = run_probes(
            encoder,
            dataset,
            probes=probe_list,
            shots=shot_list,
            seeds=seeds,
            device=device,
            batch_size=batch_size,
            fit=fit,
            templates=templates,
            image_size=image_size,
            revision=revision,
            test_dataset=test_dataset,
            coverage=coverage,
            conformal_scores=[s.strip() for s in conformal.split(",") if s.strip()],
            save_predictions=out.parent / "predictions.npz" if save_predictions and out else None,
            plots=out.parent if plots and out else None,
            corruptions=corruptions,
            severities=_int_list(severities),
            max_samples=_sizes(max_samples) if max_samples else None,
        )
    except (EncoderZooError, ValueError, OSError, ImportError) as err:
        _fail(err)
    text = json.dumps(results, indent=2)
    if out:
        try:
            atomic_write(out, lambda tmp: tmp.write_text(text + "\n"))
        except OSError as err:
            _fail(err)
    if format is OutputFormat.json:
        typer.echo(text)
    else:
        tables = [results_table(results), trust_table(results)]
        tables += [robustness_table(results, p) for p in ("knn", "linear")]
        if per_label:
            from .per_label import per_label_table

            tables.append(per_label_table(results))
        typer.echo("\n\n".join(t for t in tables if t))


@app.command("adapt")
def adapt_command(
    encoder: str = typer.Option(..., "--encoder", "-e", help="registry name, hf-hub:org/repo or local-dir:PATH"),
    dataset: str = typer.Option(..., "--dataset", "-d", help="dataset spec with train, val and test splits"),
    test_dataset: str | None = typer.Option(
        None, "--test-dataset", help="external validation: score this dataset's test split (labels both have)"
    ),
    method: str = typer.Option("lora", "--method", "-m", help=_METHOD_HELP),
    set_settings: list[str] = typer.Option(
        [], "--set", help="any setting of the method as KEY=VALUE, repeatable (--set r=4); see `encoderzoo methods`"
    ),
    out: Path = typer.Option(..., "--out", "-o", help="new folder for the adapted encoder"),
    rank: int = typer.Option(8, help="LoRA rank"),
    alpha: float = typer.Option(16.0, help="LoRA alpha (scale = alpha / rank)"),
    lora_dropout: float = typer.Option(0.0, help="LoRA dropout"),
    prompts: int = typer.Option(10, help="visual prompt tokens (vpt, vpt-deep)"),
    top_k: int = typer.Option(5, help="ACE-HGNN hyperedge size"),
    context_length: int = typer.Option(16, "--context-length", help="CoOp: learnable context tokens"),
    class_specific: bool = typer.Option(
        False, "--class-specific/--unified", help="CoOp: one context per class, or one shared (default)"
    ),
    context_init: str | None = typer.Option(
        None, "--context-init", help="CoOp: start the context from this phrase's word embeddings ('a photo of a')"
    ),
    class_names: str | None = typer.Option(
        None, "--class-names", help="CoOp: '|'-separated class texts in label order (default: the label names)"
    ),
    epochs: int = typer.Option(10, help="maximum epochs"),
    lr: float = typer.Option(1e-3, help="AdamW learning rate"),
    weight_decay: float = typer.Option(1e-4, help="AdamW weight decay"),
    batch_size: int = typer.Option(32, help="training batch size (global under torchrun)"),
    patience: int = typer.Option(3, help="epochs without validation improvement before stopping"),
    monitor: str = typer.Option("auto", help="val metric: auto, accuracy, balanced_accuracy or auroc"),
    augment: bool = typer.Option(False, "--augment/--no-augment", help="random resized crop + flip on the device"),
    class_weights: bool = typer.Option(False, "--class-weights/--no-class-weights", help="inverse-frequency weights"),
    max_train: int | None = typer.Option(None, help="train on a stratified subset of this many images"),
    image_size: int | None = typer.Option(None, "--image-size", help=_IMAGE_SIZE_HELP),
    seed: int = typer.Option(0, help="seed for the head init, data order and augmentation"),
    device: str = typer.Option("auto", help="cpu, cuda, cuda:1 ... (auto: cuda when available)"),
    weights: Path | None = typer.Option(None, help="local copy of the base encoder's canonical weight file"),
    revision: str | None = typer.Option(
        None, "--revision", help="registry entries: load the weights at this commit, branch or tag instead of the pin"
    ),
    resume: bool = typer.Option(False, "--resume", help="continue the run checkpointed in --out"),
    format: OutputFormat = typer.Option(OutputFormat.table, "--format", "-f", help="table or json on stdout"),
    per_label: bool = typer.Option(False, "--per-label", help="also print AUROC per label (multi-label tasks)"),
) -> None:
    """Fine-tune an encoder on a dataset (early stopping on val, test scored once) and save a reloadable folder."""
    from .adapters import TrainConfig, adapt
    from .adapters.methods import settings_from_cli, settings_from_pairs
    from .probe_job import results_table

    options = {  # every method option; the method's record picks those that feed its settings
        "rank": rank,
        "alpha": alpha,
        "lora_dropout": lora_dropout,
        "prompts": prompts,
        "top_k": top_k,
        "context_length": context_length,
        "class_specific": class_specific,
        "context_init": context_init,
        "class_names": [n.strip() for n in class_names.split("|")] if class_names else None,
    }
    try:
        settings = settings_from_cli(method, options) | settings_from_pairs(method, set_settings)
        config = TrainConfig(
            epochs=epochs,
            lr=lr,
            weight_decay=weight_decay,
            batch_size=batch_size,
            patience=patience,
            monitor=monitor,
            augment=augment,
            class_weights=class_weights,
            seed=seed,
        )
        results = adapt(
            encoder,
            dataset,
            method,
            out,
            method_config=settings,
            config=config,
            device=device,
            max_train=max_train,
            image_size=image_size,
            weights=weights,
            resume=resume,
            revision=revision,
            test_dataset=test_dataset,
        )
    except (EncoderZooError, ValueError, OSError) as err:
        _fail(err)
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_rank() != 0:
        return  # under torchrun, rank 0 reports
    typer.echo(json.dumps(results, indent=2) if format is OutputFormat.json else results_table(results))
    if per_label and format is OutputFormat.table:
        from .per_label import per_label_table

        typer.echo(per_label_table(results))


@app.command("speed")
def speed_command(
    encoder: str = typer.Option(..., "--encoder", "-e", help="comma-separated registry names (or hf-hub:/local-dir:)"),
    device: str = typer.Option("auto", help="cpu, cuda, cuda:1 ... (auto: cuda when available)"),
    dtype: str = typer.Option("float32", help="float32, bfloat16 or float16"),
    attention: str = typer.Option("sdpa", help="comma-separated kernels: sdpa, xformers, math, auto (ViTs only)"),
    batch_size: int | None = typer.Option(None, help="images per forward (default: 2 on CPU, 64 on CUDA)"),
    image_size: str | None = typer.Option(None, "--image-size", help="comma-separated sizes, e.g. 224,518"),
    compile: bool = typer.Option(False, "--compile", help="time torch.compile(encoder) (warm-up includes compiling)"),
    random_weights: bool = typer.Option(
        False, "--random-weights", help="random weights of the real architecture: speed needs no download"
    ),
    warmup: int | None = typer.Option(None, help="untimed forwards first (default: 1 on CPU, 5 on CUDA)"),
    repeats: int | None = typer.Option(None, help="timed forwards; the median is reported (default: 3 CPU, 20 CUDA)"),
    vs_timm: bool = typer.Option(False, "--vs-timm", help="also time the raw timm forward of the same weights"),
    out: Path | None = typer.Option(None, "--out", "-o", help="also write the JSON report here"),
    format: OutputFormat = typer.Option(OutputFormat.table, "--format", "-f", help="table or json on stdout"),
) -> None:
    """Images/s, ms per batch, peak memory, FLOPs per image and share of the GPU's peak, on this machine."""
    _check_batch_size(batch_size)
    from .bench import format_table, run_bench
    from .devices import resolve_device

    resolved = resolve_device(device)
    try:
        if out:
            check_writable(out, folder=False)
        sizes = _int_list(image_size, "--image-size") if image_size else [None]
        report = run_bench(
            [e.strip() for e in encoder.split(",") if e.strip()],
            image_sizes=sizes,
            attentions=[a.strip() for a in attention.split(",") if a.strip()],
            device=resolved,
            dtype=dtype,
            batch_size=batch_size,
            compile=compile,
            pretrained=not random_weights,
            warmup=warmup,
            repeats=repeats,
            vs_timm=vs_timm,
        )
        flags = {"--compile": compile, "--random-weights": random_weights, "--vs-timm": vs_timm}
        options = {"--batch-size": batch_size, "--image-size": image_size, "--warmup": warmup, "--repeats": repeats}
        report["environment"]["command"] = " ".join(
            ["encoderzoo speed --encoder", encoder, "--device", resolved, "--dtype", dtype, "--attention", attention]
            + [f"{k} {v}" for k, v in options.items() if v is not None]
            + [k for k, on in flags.items() if on]
        )
        text = json.dumps(report, indent=2)
        if out:
            atomic_write(out, lambda tmp: tmp.write_text(text + "\n"))
    except (EncoderZooError, ValueError, OSError) as err:
        _fail(err)
    typer.echo(text if format is OutputFormat.json else format_table(report))


@app.command("verify")
def verify_command(
    names: list[str] | None = typer.Argument(None, help="registry names (default: every entry)"),
    format: OutputFormat = typer.Option(OutputFormat.table, "--format", "-f", help="table or json on stdout"),
    timeout: float = typer.Option(10.0, help="seconds before a Hub request is given up"),
) -> None:
    """Check every pinned fact (repository, revision, files, sizes, sha256, gating, access) against the live Hub.

    Exit 0 when every check passes, 1 when one fails or the Hub cannot be reached, 2 for a usage error.
    """
    from .verify import HubUnreachableError, format_reports, reports_json, verify

    if timeout <= 0:
        raise ValueError(f"--timeout must be positive, got {timeout}")
    unknown = [n for n in names or [] if n not in list_encoders()]
    if unknown:
        get_spec(unknown[0])  # the registry's error, with close matches
    try:
        reports = verify(names or None, timeout=timeout)
    except HubUnreachableError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(code=1) from None
    typer.echo(reports_json(reports) if format is OutputFormat.json else format_reports(reports))
    if not all(r.ok for r in reports):
        raise typer.Exit(code=1)


@functools.wraps(speed_command)  # the same options, read by typer through __wrapped__
def _bench_alias(**options) -> None:
    typer.echo("warning: `encoderzoo bench` is deprecated and will be removed; use `encoderzoo speed`", err=True)
    speed_command(**options)


app.command("bench", deprecated=True, help="Deprecated alias of `encoderzoo speed` (throughput on this machine).")(
    _bench_alias
)


@app.command("benchmark")
def benchmark_command(
    encoder: list[str] = typer.Option(
        [], "--encoder", "-e", help="repeatable: registry name, random:NAME, pixels[@SIZE], hf-hub:, local-dir:"
    ),
    dataset: list[str] = typer.Option([], "--dataset", "-d", help="repeatable: dataset spec (as for probe)"),
    suite: str | None = typer.Option(
        None, "--suite", "-s", help="a preset (sample, medmnist+, cxr) or a suite TOML file"
    ),
    list_suites: bool = typer.Option(False, "--list-suites", help="show the shipped suites and their protocols"),
    probes: str | None = typer.Option(None, "--probes", "-p", help="comma-separated probes (as for probe)"),
    image_size: int | None = typer.Option(None, "--image-size", help=_IMAGE_SIZE_HELP),
    fit: str | None = typer.Option(None, help="resize, or pad (MedMNIST+ mean-colour canvas)"),
    shots: str | None = typer.Option(None, help="few-shot sizes per class"),
    seeds: int | None = typer.Option(None, help="seeds for few-shot episodes and random curation baselines"),
    device: str = typer.Option("auto", help="cpu, cuda, cuda:1 ... (auto: cuda when available)"),
    batch_size: int | None = typer.Option(None, help="embedding batch size (default: 16 on CPU, 128 on CUDA)"),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="run folder (default runs/<suite name>); rerun to resume"
    ),
    rank_by: str | None = typer.Option(
        None, "--rank-by", help="PROBE:METRIC ranked (default: the suite's, else the AUROC of a probe that ran)"
    ),
    sizes: str | None = typer.Option(None, "--sizes", help="medmnist+: comma-separated sizes among 28,64,128,224"),
    data_root: str | None = typer.Option(None, "--data-root", help="cxr: folder holding nih/ and chexpert/"),
    shard: str | None = typer.Option(
        None, "--shard", help="I/N: run every N-th cell, starting with the I-th (1-based)"
    ),
    report: bool = typer.Option(False, "--report", help="rebuild leaderboard, pictures and report.html from --out"),
) -> None:
    """Many encoders x many datasets in one command: each cell is the probe job; one leaderboard at the end."""
    from .benchmark.command import list_suites_text, run

    if list_suites:
        typer.echo(list_suites_text())
        return
    settings = {
        "probes": [p.strip() for p in probes.split(",") if p.strip()] if probes else None,
        "image_size": image_size,
        "fit": fit,
        "shots": _int_list(shots) if shots else None,
        "seeds": seeds,
    }
    try:
        code = run(
            suite=suite,
            encoders=encoder,
            datasets=dataset,
            settings=settings,
            out=out,
            device=device,
            batch_size=batch_size,
            rank_by=rank_by,
            sizes=_int_list(sizes) if sizes else None,
            data_root=data_root,
            shard=shard,
            report_only=report,
            echo=typer.echo,
            warn=lambda message: typer.echo(message, err=True),
        )
    except (EncoderZooError, ValueError, OSError) as err:
        _fail(err)
    raise typer.Exit(code=code)


@app.command("push")
def push_command(
    folder: Path = typer.Argument(..., help="an adapted folder written by `encoderzoo adapt --out`"),
    repo: str = typer.Option(..., "--repo", "-r", help="Hub model repository ORG/NAME (created when absent)"),
    private: bool = typer.Option(False, "--private", help="create the repository private"),
    revision: str = typer.Option("main", "--revision", help="branch to commit to (created from main when absent)"),
    message: str | None = typer.Option(None, "--message", "-m", help="commit message"),
) -> None:
    """Push an adapted encoder (adapter, head, results, generated card; never base weights) to the Hub.

    The token comes from HF_TOKEN or `hf auth login`; the base model's licence decides what may be pushed.
    """
    from .hub import push

    try:
        result = push(folder, repo, private=private, revision=revision, message=message)
    except (EncoderZooError, ValueError, OSError) as err:
        _fail(err)
    if result.created_repo:
        typer.echo(f"created {result.url}", err=True)
    for warning in result.warnings:
        typer.echo(f"warning: {warning}", err=True)
    if not result.changed:
        typer.echo(f"{repo}@{revision} is up to date ({len(result.unchanged)} files unchanged); no commit made")
        return
    typer.echo(f"pushed {len(result.uploaded)} file(s) to {repo}@{revision}: {', '.join(result.uploaded)}")
    if result.deleted:
        typer.echo(f"deleted stale file(s): {', '.join(result.deleted)}")
    typer.echo(f'commit {result.commit}; load it with encoderzoo.load("hf-hub:{repo}@{result.commit}")')


if __name__ == "__main__":
    app()
