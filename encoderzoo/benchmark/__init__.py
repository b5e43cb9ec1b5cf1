"""``encoderzoo benchmark``: many encoders x many datasets under one protocol, one leaderboard.

- ``suite``: suite files and presets -> the expanded list of cells, its hash and its diff;
- ``runner``: each cell is the ``encoderzoo probe`` job (``evaluate.run_probes``), a model loaded once per encoder;
- ``leaderboard``: ranks (ties averaged), interval-overlap marks, json / md / csv;
- ``plots`` (extra ``plots``) and ``report``: leaderboard.png, fewshot.png, report.html;
- ``command``: what the CLI calls.
"""

from .runner import parse_shard, run_cells
from .suite import ExpandedSuite, SuiteError, expand, list_presets, read_suite

__all__ = ["ExpandedSuite", "SuiteError", "expand", "list_presets", "parse_shard", "read_suite", "run_cells"]
