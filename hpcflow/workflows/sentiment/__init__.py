"""Sentiment of news articles by place (the dispel4py paper's stateful use case), offline.

Two analyses of each article, AFINN's lexicon and VADER's (the paper's second method,
SentiWordNet, cannot be downloaded here), each ranking the three happiest states. The
articles are a deterministic synthetic newswire (`articles`, `seed`) or a Kaggle "News
Articles" CSV (`csv`). HappyState groups by state and keeps state, so the pure dynamic
mappings refuse this graph; run it with `simple`, `multi` or a `hybrid_*` mapping.

afinn and vaderSentiment are imported when the workflow is built, so a missing one is
one clear error, not a traceback.
"""

from __future__ import annotations

from importlib.util import find_spec
from typing import Any

from ...errors import UsageError
from ...graph import WorkflowGraph
from ..params import Param

PARAMS = {
    "articles": Param(int, "synthetic articles datelined in US cities", least=1),
    "seed": Param(int, "of the synthetic articles"),
    "csv": Param(str, 'the Kaggle "News Articles" CSV (default: synthetic articles)', unit="path"),
    "latency": Param(float, "each scorer (AFINN, VADER) sleeps this per article", unit="seconds", least=0),
}


def build(
    articles: int = 1000, seed: int = 0, csv: str | None = None, latency: float = 0.0
) -> tuple[WorkflowGraph, dict, dict[str, Any]]:
    """The workflow over `articles` synthetic articles, or every article of `csv`. Each
    scorer sleeps `latency` seconds per article: the heavier NLP of the paper's runs,
    which makes a small machine show how the mappings place the work."""
    if isinstance(articles, bool) or not isinstance(articles, int) or articles < 1:
        raise UsageError(f"sentiment: articles must be a positive integer, got {articles!r}")
    if isinstance(latency, bool) or not isinstance(latency, (int, float)) or latency < 0:
        raise UsageError(f"sentiment: latency must be a number of seconds >= 0, got {latency!r}")
    missing = [m for m in ("afinn", "vaderSentiment") if find_spec(m) is None]
    if missing:
        raise UsageError(
            f"sentiment needs {' and '.join(missing)} (pip install -e '.[workflows]' in hpcflow's source tree)"
        )
    from . import pes
    from .articles import CsvArticles, SyntheticArticles, read_articles_csv

    if csv is None:
        source = SyntheticArticles(articles, seed)
    else:
        try:
            count = len(read_articles_csv(csv))
        except OSError as exc:
            raise UsageError(f"sentiment: cannot read {csv}: {exc.strerror}") from None
        except ValueError as exc:
            raise UsageError(f"sentiment: {exc}") from None
        if count == 0:
            raise UsageError(f"sentiment: {csv} has no articles")
        source = CsvArticles(csv, count)

    graph = WorkflowGraph()
    read = pes.ReadArticles(source)
    afinn_branch = pes.SentimentAFINN(latency)
    tokenize, vader_branch = pes.Tokenize(), pes.SentimentVADER(latency)
    graph.connect(read, "output", afinn_branch, "input")
    graph.connect(read, "output", tokenize, "input")
    graph.connect(tokenize, "output", vader_branch, "input")
    for method, scorer in (("afinn", afinn_branch), ("vader", vader_branch)):
        find, happy, top = pes.FindState(), pes.HappyState(method), pes.Top3Happiest(method)
        suffix = method.upper()
        find.name, happy.name, top.name = f"FindState{suffix}", f"HappyState{suffix}", f"Top3Happiest{suffix}"
        graph.connect(scorer, "output", find, "input")
        graph.connect(find, "output", happy, "input")
        graph.connect(happy, "output", top, "input")
    return graph, {read: len(source)}, {"work_s": 2 * latency * len(source), "articles": len(source)}
