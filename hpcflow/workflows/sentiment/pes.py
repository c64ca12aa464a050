"""The sentiment workflow's PEs.

    ReadArticles -> SentimentAFINN ----------------> FindState -> HappyState -> Top3Happiest
                 -> Tokenize -> SentimentVADER ----> FindState -> HappyState -> Top3Happiest

Each branch has its own FindState/HappyState/Top3Happiest, as in the paper's graph, so
each method's stateful instances are separate PEs that a mapping places on their own.
"""

from __future__ import annotations

import time
from typing import Any

from ...pe import GenericPE, IterativePE, ProducerPE
from . import science
from .articles import CsvArticles, SyntheticArticles

Item = dict[str, Any]


class ReadArticles(ProducerPE):
    """Emits one article per call (for bounded queues in the parallel mappings, as the
    other workflows' readers)."""

    def __init__(self, source: SyntheticArticles | CsvArticles):
        super().__init__()
        self.source = source
        self.calls = 0

    def _process(self, inputs: dict[str, Any]) -> Item:
        i = self.calls
        self.calls += 1
        return self.source.article(i)


class SentimentAFINN(IterativePE):
    """Scores the article with the AFINN lexicon (loaded once per instance, in preprocess);
    `latency` seconds of sleep per article stand in for a heavier analysis."""

    def __init__(self, latency: float = 0.0):
        super().__init__()
        self.latency = latency

    def preprocess(self) -> None:
        from afinn import Afinn

        self._afinn = Afinn()

    def _process(self, article: Item) -> Item:
        if self.latency:
            time.sleep(self.latency)
        return {
            "id": article["id"],
            "text": article["text"],
            "score": science.afinn_score(article["text"], self._afinn),
        }

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state.pop("_afinn", None)
        return state


class Tokenize(IterativePE):
    """Splits the article into sentences, the unit VADER scores."""

    def _process(self, article: Item) -> Item:
        return {"id": article["id"], "text": article["text"], "sentences": science.split_sentences(article["text"])}


class SentimentVADER(IterativePE):
    """Scores the sentences with VADER's lexicon and rules (loaded once per instance);
    `latency` as for SentimentAFINN."""

    def __init__(self, latency: float = 0.0):
        super().__init__()
        self.latency = latency

    def preprocess(self) -> None:
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

        self._analyzer = SentimentIntensityAnalyzer()

    def _process(self, article: Item) -> Item:
        if self.latency:
            time.sleep(self.latency)
        score = science.vader_score(article["sentences"], self._analyzer)
        return {"id": article["id"], "text": article["text"], "score": score}

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state.pop("_analyzer", None)
        return state


class FindState(IterativePE):
    """Adds the state of the article's dateline; an article without one has no place to
    count for, and goes no further."""

    def _process(self, scored: Item) -> Item | None:
        place = science.dateline(scored["text"])
        if place is None:
            return None
        return {"id": scored["id"], "state": science.state_of(place), "score": scored["score"]}


class HappyState(GenericPE):
    """The running mean score of each state it is given (group-by state, so each state's
    articles all reach one instance); emits `{method, state, mean, articles}` per state in
    postprocess()."""

    numprocesses = 4

    def __init__(self, method: str):
        super().__init__()
        self._add_input("input", grouping=["state"])
        self._add_output("output")
        self.method = method
        self.scores: dict[str, list[float]] = {}

    def process(self, inputs: dict[str, Any]) -> None:
        item = inputs["input"]
        self.scores.setdefault(item["state"], []).append(item["score"])

    def postprocess(self) -> None:
        for state in sorted(self.scores):
            scores = self.scores[state]
            self.write(
                "output",
                {"method": self.method, "state": state, "mean": science.exact_mean(scores), "articles": len(scores)},
            )


class Top3Happiest(GenericPE):
    """Ranks every state's mean (global grouping: one instance sees them all) and emits the
    three happiest in postprocess(): `{method, top3: [{state, mean, articles}], states}`."""

    def __init__(self, method: str):
        super().__init__()
        self._add_input("input", grouping="global")
        self._add_output("output")
        self.method = method
        self.means: dict[str, tuple[float, int]] = {}

    def process(self, inputs: dict[str, Any]) -> None:
        item = inputs["input"]
        self.means[item["state"]] = (item["mean"], item["articles"])

    def postprocess(self) -> None:
        self.write(
            "output", {"method": self.method, "top3": science.top_happiest(self.means, 3), "states": len(self.means)}
        )
