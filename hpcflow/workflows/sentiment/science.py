"""The science of the sentiment workflow, as pure functions: where an article was
written, how happy it is, and which places are happiest.

Locations come from the dateline (the text before the first ':', as in "BOSTON: ...").
A dateline naming a US state or one of the cities below is read as that state; any other
place (the Kaggle articles are mostly datelined in Pakistan) stays a group of its own.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import Any

# The city that datelines each state's news here (its largest or best-known city, chosen
# so that no name is shared with another state's city).
STATE_CITIES: dict[str, str] = {
    "Alabama": "Birmingham",
    "Alaska": "Anchorage",
    "Arizona": "Phoenix",
    "Arkansas": "Little Rock",
    "California": "Los Angeles",
    "Colorado": "Denver",
    "Connecticut": "Hartford",
    "Delaware": "Wilmington",
    "Florida": "Miami",
    "Georgia": "Atlanta",
    "Hawaii": "Honolulu",
    "Idaho": "Boise",
    "Illinois": "Chicago",
    "Indiana": "Indianapolis",
    "Iowa": "Des Moines",
    "Kansas": "Wichita",
    "Kentucky": "Louisville",
    "Louisiana": "New Orleans",
    "Maine": "Bangor",
    "Maryland": "Baltimore",
    "Massachusetts": "Boston",
    "Michigan": "Detroit",
    "Minnesota": "Minneapolis",
    "Mississippi": "Jackson",
    "Missouri": "St. Louis",
    "Montana": "Billings",
    "Nebraska": "Omaha",
    "Nevada": "Las Vegas",
    "New Hampshire": "Concord",
    "New Jersey": "Newark",
    "New Mexico": "Albuquerque",
    "New York": "New York",
    "North Carolina": "Charlotte",
    "North Dakota": "Fargo",
    "Ohio": "Columbus",
    "Oklahoma": "Tulsa",
    "Oregon": "Portland",
    "Pennsylvania": "Philadelphia",
    "Rhode Island": "Providence",
    "South Carolina": "Columbia",
    "South Dakota": "Sioux Falls",
    "Tennessee": "Nashville",
    "Texas": "Houston",
    "Utah": "Salt Lake City",
    "Vermont": "Burlington",
    "Virginia": "Richmond",
    "Washington": "Seattle",
    "West Virginia": "Charleston",
    "Wisconsin": "Milwaukee",
    "Wyoming": "Cheyenne",
}
US_STATES = tuple(STATE_CITIES)

# Newspaper convention: a "WASHINGTON:" dateline is the capital, not the state.
_PLACES = {
    **{state.upper(): state for state in US_STATES},
    **{city.upper(): state for state, city in STATE_CITIES.items()},
    "WASHINGTON": "District of Columbia",
}
_MAX_DATELINE = 40  # a longer text before ':' is a sentence, not a place
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def dateline(text: str) -> str | None:
    """The place before the first ':' of an article, or None if it has no dateline."""
    head, sep, _ = text.partition(":")
    head = " ".join(head.split())
    if not sep or not head or len(head) > _MAX_DATELINE:
        return None
    return head


def state_of(place: str) -> str:
    """The US state a dateline place is in; another place keeps its own (title-cased) name."""
    key = " ".join(place.upper().split())
    return _PLACES.get(key, key.title())


def split_sentences(text: str) -> list[str]:
    """Sentences, split after '.', '!' or '?' (VADER scores one sentence at a time)."""
    return [s for s in (part.strip() for part in _SENTENCE_END.split(text)) if s]


def afinn_score(text: str, afinn: Any) -> float:
    """AFINN's score of an article: the sum of the valences (-5..5) of its words."""
    return float(afinn.score(text))


def vader_score(sentences: list[str], analyzer: Any) -> float:
    """VADER's score of an article: the mean compound score (-1..1) of its sentences,
    the averaging VADER's authors advise for text longer than a sentence."""
    if not sentences:
        return 0.0
    return exact_mean(analyzer.polarity_scores(s)["compound"] for s in sentences)


def exact_mean(values: Iterable[float]) -> float:
    """The mean with a correctly rounded sum (math.fsum), hence the same in whatever order
    the values arrived: every mapping gives bit-identical state means."""
    values = list(values)
    return math.fsum(values) / len(values)


def top_happiest(means: dict[str, tuple[float, int]], n: int = 3) -> list[dict[str, Any]]:
    """The `n` places with the highest mean score (ties by name), as
    `{state, mean, articles}` from `{state: (mean, articles)}`."""
    ranked = sorted(means.items(), key=lambda kv: (-kv[1][0], kv[0]))[:n]
    return [{"state": state, "mean": mean, "articles": count} for state, (mean, count) in ranked]
