"""A run, or a ``.vmig.jsonl`` file, as one self-contained HTML page to look at (``vexrun report``,
``vexrun inspect --html``): no server, no network, nothing fetched.

::

    api.py      what each command gathers, and the page it writes
    gather.py   a run's figures from its state directory: stages, throughput, rejects, LLM usage
    memmap.py   the map of the memories: a seeded sample of vectors, projected to 2-D (PCA)
    page.py     the page: data as escaped JSON, the script and styles inlined, a strict CSP
    script.py   the page's script (vanilla JS and inline SVG)
    style.py    the page's stylesheet
"""

from __future__ import annotations

from .api import Written, file_report, run_report

__all__ = ["Written", "file_report", "run_report"]
