"""Where the articles come from: a deterministic synthetic newswire, or the public Kaggle
"News Articles" CSV (columns Date, Heading, NewsType, Article) for those who have it.

An article is `{id, date, heading, news_type, text}` with the dateline in the text.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from typing import Any

import numpy as np

from ...grouping import stable_hash
from .science import STATE_CITIES, US_STATES

CSV_COLUMNS = ("Date", "Heading", "NewsType", "Article")

# Short newswire sentences whose sentiment both lexicons (AFINN and VADER) recognise.
POSITIVE = (
    "Residents celebrated the opening of a wonderful new park.",
    "Local businesses reported excellent sales and happy customers.",
    "The team won an impressive victory in front of a proud crowd.",
    "Volunteers were praised for their generous help.",
    "Officials welcomed the great news about new jobs.",
    "Families enjoyed a beautiful festival downtown.",
    "Students achieved outstanding results this year.",
    "The hospital thanked donors for their kind support.",
)
NEGATIVE = (
    "Residents were angry about the terrible traffic.",
    "A fire destroyed several homes and injured two people.",
    "The factory closure is a painful loss for workers.",
    "Police arrested a suspect after a violent robbery.",
    "Farmers fear the drought will ruin the harvest.",
    "Critics condemned the awful state of the roads.",
    "The storm caused serious damage and panic.",
    "Shoppers are worried as prices keep rising.",
)
NEUTRAL = (
    "The council met on Tuesday to discuss the budget.",
    "The report will be published next month.",
    "Officials said the project covers three districts.",
    "The meeting is scheduled for the afternoon.",
    "The company employs about two hundred people.",
    "The bridge was built in the last century.",
)
NEWS_TYPES = ("business", "sports")


def state_bias(state: str, seed: int = 0) -> float:
    """How happy the news from `state` tends to be, in [-1, 1]."""
    return 2.0 * stable_hash(("bias", seed, state)) / 2**64 - 1.0


def synthetic_article(index: int, seed: int = 0) -> dict[str, Any]:
    """Article `index` of the synthetic newswire: a random state's city in the dateline,
    4 to 7 sentences, positive ones likelier (and negative ones rarer) where the state's
    bias is high, so the happiest states are known in advance."""
    rng = np.random.default_rng(stable_hash(("article", seed, index)))
    state = US_STATES[int(rng.integers(len(US_STATES)))]
    bias = state_bias(state, seed)
    p_positive, p_negative = 0.4 + 0.35 * bias, 0.4 - 0.35 * bias
    sentences = []
    for _ in range(int(rng.integers(4, 8))):
        u = rng.uniform()
        bank = POSITIVE if u < p_positive else NEGATIVE if u < p_positive + p_negative else NEUTRAL
        sentences.append(bank[int(rng.integers(len(bank)))])
    city = STATE_CITIES[state]
    return {
        "id": index,
        "date": f"2015-{1 + index % 12:02d}-{1 + index % 28:02d}",
        "heading": f"News from {city}",
        "news_type": NEWS_TYPES[int(rng.integers(len(NEWS_TYPES)))],
        "text": f"{city.upper()}: " + " ".join(sentences),
    }


class SyntheticArticles:
    def __init__(self, count: int, seed: int = 0):
        self.count = count
        self.seed = seed

    def __len__(self) -> int:
        return self.count

    def article(self, index: int) -> dict[str, Any]:
        return synthetic_article(index, self.seed)


_TAG = re.compile(r"<[^>]*>")


def clean_text(text: str) -> str:
    """Drop HTML tags and collapse white space (the Kaggle text has both)."""
    return " ".join(_TAG.sub(" ", text).split())


def read_articles_csv(path: str) -> list[dict[str, Any]]:
    """The articles of a Kaggle "News Articles" CSV with a non-empty Article; ValueError
    if a column is missing. The file is UTF-8, or else Latin-1 (as Kaggle's is)."""
    raw = Path(path).read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    missing = [c for c in CSV_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise ValueError(f"{path} has no column {', '.join(missing)} (expected {', '.join(CSV_COLUMNS)})")
    out = []
    for row in reader:
        body = clean_text(row["Article"] or "")
        if body:
            out.append(
                {
                    "id": len(out),
                    "date": (row["Date"] or "").strip(),
                    "heading": clean_text(row["Heading"] or ""),
                    "news_type": (row["NewsType"] or "").strip(),
                    "text": body,
                }
            )
    return out


class CsvArticles:
    """The articles of a CSV file, read on first use (so the graph pickles small)."""

    def __init__(self, path: str, count: int):
        self.path = path
        self.count = count
        self._articles: list[dict[str, Any]] | None = None

    def __len__(self) -> int:
        return self.count

    def article(self, index: int) -> dict[str, Any]:
        if self._articles is None:
            self._articles = read_articles_csv(self.path)
        return self._articles[index]
