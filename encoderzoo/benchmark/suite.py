"""Benchmark suites: a TOML file (or a shipped preset) -> the expanded list of cells, its hash and its diff.

A suite file holds the fields of ``encoderzoo benchmark`` and per-dataset overrides::

    name = "mine"
    description = "one line"
    protocol = "what a reader needs to reproduce the numbers"
    encoders = ["efficientnet-lite0", "random:efficientnet-lite0", "pixels"]
    probes = ["knn", "linear"]            # and image_size, fit, shots, seeds: as for `encoderzoo probe`
    rank_by = "linear:auroc"              # the leaderboard's PROBE:METRIC
    sizes = [28, 224]                     # optional: "{size}" in dataset specs is expanded over these (--sizes)

    [[datasets]]
    spec = "npz:a.npz"
    probes = ["knn"]                      # per-dataset overrides of probes, image_size, fit, shots, seeds
    optional = true                       # left out when its path is absent (``{data_root}`` is --data-root)

The expanded suite (``ExpandedSuite.to_dict``) is what ``suite.json`` in ``--out`` holds; its hash covers
exactly what decides a cell's numbers (encoders, dataset specs and each dataset's probe settings), not the name,
the texts, the device or the batch size.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import EncoderZooError
from ..names import EncoderNameError, parse_encoder_name
from ..registry import get_spec

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

PRESET_FOLDER = "suites"  # TOML files shipped inside encoderzoo.benchmark (package data)
DEFAULT_PRESET = "sample"
SETTINGS = ("probes", "image_size", "fit", "shots", "seeds", "test_dataset")
"""Per-cell probe settings (they mean what they mean for ``encoderzoo probe``; ``test_dataset``: external validation,
fit on the cell's dataset, scored on this one's test split over the labels both have)."""
DEFAULTS: dict[str, Any] = {
    "probes": ["knn", "linear"],
    "image_size": None,
    "fit": "resize",
    "shots": [1, 5, 10],
    "seeds": 5,
    "test_dataset": None,
}
_TOP_KEYS = {"name", "description", "protocol", "encoders", "datasets", "rank_by", "sizes", "published", *SETTINGS}
_DATASET_KEYS = {"spec", "optional", *SETTINGS}


class SuiteError(EncoderZooError, ValueError):
    """A suite that cannot run: unknown preset, malformed file, unknown probe or encoder, a used --out."""


@dataclass(frozen=True)
class Cell:
    """One (encoder, dataset) pair and the probe settings it runs with."""

    encoder: str
    dataset: str
    settings: dict[str, Any]

    @property
    def key(self) -> str:
        return f"{self.encoder} | {self.dataset}"


@dataclass
class ExpandedSuite:
    """A suite with presets resolved, ``{size}`` / ``{data_root}`` filled in and every dataset's settings merged."""

    name: str
    description: str
    protocol: str
    source: str
    encoders: list[str]
    datasets: list[dict[str, Any]]
    rank_by: str
    left_out: list[str] = field(default_factory=list)
    """Optional datasets whose paths were absent."""
    published: str | None = None
    """A paper's figures to show beside ours (``published.py``): a shipped file name or a path."""

    def cells(self) -> list[Cell]:
        """Every cell, encoder-major (so one loaded model serves a run of consecutive cells)."""
        return [Cell(e, d["spec"], _cell_settings(e, d)) for e in self.encoders for d in self.datasets]

    def content(self) -> dict[str, Any]:
        """What decides the numbers: the hashed part."""
        return {"encoders": self.encoders, "datasets": self.datasets}

    @property
    def hash(self) -> str:
        return hashlib.sha256(json.dumps(self.content(), sort_keys=True).encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "protocol": self.protocol,
            "source": self.source,
            "encoders": self.encoders,
            "datasets": self.datasets,
            "rank_by": self.rank_by,
            "left_out": self.left_out,
            "published": self.published,
            "hash": self.hash,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExpandedSuite:
        fields = ("name", "description", "protocol", "source", "encoders", "datasets", "rank_by", "left_out")
        return cls(**{k: data[k] for k in fields}, published=data.get("published"))


def list_presets() -> dict[str, dict[str, Any]]:
    """Shipped presets by name, each as its parsed TOML."""
    out = {}
    for entry in sorted((resources.files("encoderzoo.benchmark") / PRESET_FOLDER).iterdir(), key=lambda p: p.name):
        if entry.name.endswith(".toml"):
            out[entry.name.removesuffix(".toml")] = tomllib.loads(entry.read_text())
    return out


def read_suite(suite: str | None) -> tuple[dict[str, Any], str]:
    """The raw suite (``None``: the default preset) and where it came from (``preset:NAME`` or ``file:PATH``)."""
    suite = suite or DEFAULT_PRESET
    presets = list_presets()
    if suite in presets:
        return presets[suite], f"preset:{suite}"
    path = Path(suite).expanduser()
    if not path.is_file():
        close = difflib.get_close_matches(suite, presets, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise SuiteError(
            f"unknown suite {suite!r}: neither a preset ({', '.join(presets)}) nor a TOML file.{hint} "
            "See `encoderzoo benchmark --list-suites`."
        )
    try:
        return tomllib.loads(path.read_text()), f"file:{path}"
    except tomllib.TOMLDecodeError as err:
        raise SuiteError(f"{path} is not valid TOML: {err}") from err


def expand(
    raw: dict[str, Any],
    source: str,
    *,
    encoders: list[str] | None = None,
    datasets: list[str] | None = None,
    overrides: dict[str, Any] | None = None,
    sizes: list[int] | None = None,
    data_root: str | os.PathLike[str] | None = None,
    rank_by: str | None = None,
) -> ExpandedSuite:
    """Resolve ``raw`` into cells; command-line ``encoders`` / ``datasets`` replace the suite's, ``overrides``
    (``SETTINGS`` given on the command line) win over the suite's and its datasets' own. Checks everything that
    can be checked without loading a model or reading a dataset; a problem is a ``SuiteError``."""
    unknown = sorted(set(raw) - _TOP_KEYS)
    if unknown:
        raise SuiteError(f"suite {source}: unknown field(s) {unknown}; known: {sorted(_TOP_KEYS)}")
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    base = {k: raw.get(k, DEFAULTS[k]) for k in SETTINGS}
    entries = [{"spec": d} for d in datasets] if datasets else list(raw.get("datasets", []))
    names = list(encoders) if encoders else list(raw.get("encoders", []))
    if not names:
        raise SuiteError(f"suite {source} names no encoder: add encoders = [...] or pass --encoder")
    if not entries:
        raise SuiteError(f"suite {source} names no dataset: add [[datasets]] or pass --dataset")
    for name in names:
        _check_encoder(name)
    if len(set(names)) != len(names):
        raise SuiteError(f"an encoder is listed twice: {names}")
    suite_sizes = raw.get("sizes")
    if sizes is not None and not suite_sizes:
        raise SuiteError(f"--sizes applies to suites with sizes (medmnist+); {source} has none")
    if sizes is not None and set(sizes) - set(suite_sizes):
        raise SuiteError(f"--sizes {sorted(set(sizes) - set(suite_sizes))} not among the suite's sizes {suite_sizes}")
    chosen_sizes = sizes or suite_sizes or [None]
    root = str(Path(data_root).expanduser()) if data_root is not None else None
    expanded, left_out = [], []
    for entry in entries:
        if not isinstance(entry, dict) or "spec" not in entry:
            raise SuiteError(f'suite {source}: every [[datasets]] entry needs spec = "..."; got {entry!r}')
        bad = sorted(set(entry) - _DATASET_KEYS)
        if bad:
            raise SuiteError(f"suite {source}: unknown dataset field(s) {bad}; known: {sorted(_DATASET_KEYS)}")
        for size in chosen_sizes if "{size}" in entry["spec"] else [None]:
            spec = entry["spec"]
            if "{data_root}" in spec:
                if root is None:
                    raise SuiteError(f"suite {source} looks for datasets under --data-root: pass --data-root DIR")
                spec = spec.replace("{data_root}", root)
            if size is not None:
                spec = spec.replace("{size}", str(size))
            if entry.get("optional") and not _target_exists(spec):
                left_out.append(spec)
                continue
            settings = {**base, **{k: entry[k] for k in SETTINGS if k in entry}, **overrides}
            if isinstance(settings["test_dataset"], str) and "{data_root}" in settings["test_dataset"]:
                if root is None:
                    raise SuiteError(f"suite {source} looks for datasets under --data-root: pass --data-root DIR")
                settings["test_dataset"] = settings["test_dataset"].replace("{data_root}", root)
            expanded.append({"spec": spec, **_checked(settings, spec)})
    if not expanded:
        raise SuiteError(
            f"suite {source}: none of its datasets was found (looked for {', '.join(left_out)}); check --data-root"
        )
    specs = [d["spec"] for d in expanded]
    if len(set(specs)) != len(specs):
        raise SuiteError(f"a dataset is listed twice: {specs}")
    suite = ExpandedSuite(
        name=str(raw.get("name") or ("adhoc" if encoders or datasets else Path(source).stem)),
        description=str(raw.get("description", "")),
        protocol=str(raw.get("protocol", "")),
        source=source,
        encoders=names,
        datasets=expanded,
        rank_by=rank_by or default_rank_by(expanded, raw.get("rank_by")),
        left_out=left_out,
        published=_published_path(raw.get("published"), source),
    )
    parse_rank_by(suite.rank_by)
    if (encoders or datasets) and source != "command line":
        suite.source = f"{source} + command line"
    return suite


RANKABLE = ("linear", "knn", "zeroshot", "linear-medmnist+")
"""Probes whose AUROC the leaderboard ranks by when no --rank-by is given, in order of preference."""


def default_rank_by(datasets: list[dict[str, Any]], suite_rank_by: str | None = None) -> str:
    """The ranking when ``--rank-by`` is not given: the suite's own if some cell runs its probe, else the AUROC of
    the first ``RANKABLE`` probe that runs (``--probes knn`` on a suite ranked by ``linear:auroc`` is ranked by
    kNN, not by a probe no cell has)."""
    run = {p for d in datasets for p in d["probes"]}
    if suite_rank_by and parse_rank_by(suite_rank_by)[0].split("/")[0] in run:
        return suite_rank_by
    return f"{next((p for p in RANKABLE if p in run), 'linear')}:auroc"


def _published_path(name: Any, source: str) -> str | None:
    """The suite's ``published`` field, a path relative to a suite file resolved beside it (shipped names and
    other paths are checked by ``published.read`` before any work)."""
    if name is None:
        return None
    if not isinstance(name, str) or not name.strip():
        raise SuiteError(f"suite {source}: published must be a file name or path, got {name!r}")
    if source.startswith("file:") and not Path(name).is_absolute():
        beside = Path(source.removeprefix("file:")).parent / name
        if beside.is_file():
            return str(beside)
    return name


TRUST_METRICS = {
    "ece": "calibration",
    "ece_equal_mass": "calibration",
    "mce": "calibration",
    "brier": "calibration",
    "nll": "calibration",
    "coverage": "conformal",
    "coverage_gap": "conformal",
    "set_size": "conformal",
    "robust_accuracy": "robustness",
    "robust_auroc": "robustness",
    "relative_drop_accuracy": "robustness",
    "relative_drop_auroc": "robustness",
}
"""Calibration, conformal and robustness metrics a leaderboard can rank by (``linear:ece``), and the entry of the
probe's results that holds each (``probes.linear.calibration.ece``)."""
LOWER_IS_BETTER = frozenset(
    {
        "ece",
        "ece_equal_mass",
        "mce",
        "brier",
        "nll",
        "coverage_gap",
        "set_size",
        "relative_drop_accuracy",
        "relative_drop_auroc",
    }
)
"""Metrics where the best encoder has the smallest value (ranked ascending)."""


def parse_rank_by(text: str) -> tuple[str, str]:
    """``PROBE:METRIC`` -> (probe path, metric); the probe may be a nested one (``fewshot/linear/5``), and a trust
    metric names its entry (``linear:ece`` -> ``("linear/calibration", "ece")``)."""
    from ..probes.metrics import METRICS

    probe, sep, metric = text.rpartition(":")
    if not sep or not probe or (metric not in METRICS and metric not in TRUST_METRICS):
        raise SuiteError(
            f"--rank-by {text!r}: write PROBE:METRIC with METRIC one of {[*METRICS, *TRUST_METRICS]} (linear:auroc)"
        )
    if metric in TRUST_METRICS:
        probe = f"{probe}/{TRUST_METRICS[metric]}"
    return probe, metric


def diff(stored: dict[str, Any], new: ExpandedSuite) -> str:
    """How ``new`` differs from the suite stored in ``suite.json`` (empty when they hash alike)."""
    if stored.get("hash") == new.hash:
        return ""
    lines = []
    old_enc, new_enc = stored.get("encoders", []), new.encoders
    if old_enc != new_enc:
        lines.append(_list_diff("encoders", old_enc, new_enc))
    old_ds = {d["spec"]: d for d in stored.get("datasets", [])}
    new_ds = {d["spec"]: d for d in new.datasets}
    if list(old_ds) != list(new_ds):
        lines.append(_list_diff("datasets", list(old_ds), list(new_ds)))
    for spec in old_ds.keys() & new_ds.keys():
        changed = [
            f"{k} {old_ds[spec].get(k)!r} -> {new_ds[spec].get(k)!r}"
            for k in SETTINGS
            if old_ds[spec].get(k) != new_ds[spec].get(k)
        ]
        if changed:
            lines.append(f"{spec}: " + ", ".join(changed))
    return "; ".join(lines) or "the stored suite was written by another version"


def _list_diff(what: str, old: list[str], new: list[str]) -> str:
    added = [x for x in new if x not in old]
    removed = [x for x in old if x not in new]
    parts = [f"+{x}" for x in added] + [f"-{x}" for x in removed]
    return f"{what} " + (" ".join(parts) if parts else "in another order")


def _cell_settings(encoder: str, dataset: dict[str, Any]) -> dict[str, Any]:
    """A dataset's settings for one encoder: the ``pixels`` control has its size in its name, so the suite's
    ``image_size`` does not apply to it (its cell is ``encoderzoo probe`` without ``--image-size``)."""
    settings = {k: dataset.get(k, DEFAULTS[k]) for k in SETTINGS}
    if parse_encoder_name(encoder).kind == "pixels":
        settings["image_size"] = None
    return settings


def _check_encoder(name: str) -> None:
    try:
        ref = parse_encoder_name(name)
        if ref.kind in ("registry", "random"):
            get_spec(ref.target or "")
    except (EncoderNameError, KeyError) as err:
        raise SuiteError(str(err)) from err


def _checked(settings: dict[str, Any], spec: str) -> dict[str, Any]:
    from ..probe_settings import PROBES

    probes = settings["probes"]
    if isinstance(probes, str):
        probes = [p.strip() for p in probes.split(",") if p.strip()]
    unknown = [p for p in probes if p not in PROBES]
    if unknown or not probes:
        raise SuiteError(f"{spec}: unknown probe(s) {unknown or probes}; choose from {list(PROBES)}")
    if settings["fit"] not in ("resize", "pad"):
        raise SuiteError(f"{spec}: fit must be 'resize' or 'pad', got {settings['fit']!r}")
    shots = [int(s) for s in settings["shots"]]
    if any(s < 1 for s in shots) or int(settings["seeds"]) < 1:
        raise SuiteError(f"{spec}: shots and seeds must be positive")
    size = settings["image_size"]
    test_dataset = settings.get("test_dataset")
    if test_dataset is not None and (not isinstance(test_dataset, str) or not test_dataset.strip()):
        raise SuiteError(f"{spec}: test_dataset must be a dataset spec string, got {test_dataset!r}")
    return {
        "probes": list(probes),
        "image_size": int(size) if size is not None else None,
        "fit": settings["fit"],
        "shots": shots,
        "seeds": int(settings["seeds"]),
        "test_dataset": test_dataset,
    }


def _target_exists(spec: str) -> bool:
    """Whether the path of a folder- or file-based dataset spec exists (``medmnist:`` / ``sample:`` always do)."""
    scheme, _, rest = spec.partition(":")
    if scheme in ("medmnist", "sample"):
        return True
    return Path(rest.partition("?")[0]).expanduser().exists()
