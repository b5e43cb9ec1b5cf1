"""The ``encoderzoo`` command: thin shims over the public API. Tables or JSON on stdout, errors on stderr."""

from __future__ import annotations

import json
from enum import Enum

import typer

from .errors import EncoderZooError
from .registry import get_spec, list_encoders

app = typer.Typer(help="Load, adapt and measure medical-imaging foundation encoders.", no_args_is_help=True)


class OutputFormat(str, Enum):
    table = "table"
    json = "json"


def _fail(err: Exception) -> None:
    typer.echo(f"error: {err}", err=True)
    raise typer.Exit(code=2)


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
            value = ", ".join(f"{k}={v}" for k, v in value.items() if v is not None)
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


if __name__ == "__main__":
    app()
