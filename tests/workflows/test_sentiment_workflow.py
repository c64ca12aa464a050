"""The sentiment workflow: lexicon scores, datelines, order-free state means, the top 3 of
a crafted article set, and the stateful graph's mappings."""

from __future__ import annotations

import csv
import itertools
import pickle

import pytest
from afinn import Afinn
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from hpcflow import run
from hpcflow.errors import UsageError
from hpcflow.plan import DYNAMIC, HYBRID, make_plan
from hpcflow.workflows.sentiment import build, science
from hpcflow.workflows.sentiment.articles import read_articles_csv, state_bias
from hpcflow.workflows.sentiment.science import US_STATES


def top3(result, method: str) -> list[str]:
    (ranking,) = result.output(f"Top3Happiest{method.upper()}")
    return [entry["state"] for entry in ranking["top3"]]


@pytest.mark.parametrize(
    "text, score",
    [
        ("This is utterly excellent!", 3.0),  # excellent +3
        ("The flood was a terrible disaster.", -5.0),  # terrible -3, disaster -2
        ("Good news, bad news.", 0.0),  # good +3, bad -3
        ("The meeting is on Tuesday.", 0.0),
    ],
)
def test_afinn_scores_known_sentences(text, score):
    assert science.afinn_score(text, Afinn()) == score


def test_vader_scores_known_sentences_and_averages_them():
    analyzer = SentimentIntensityAnalyzer()
    assert science.vader_score(["VADER is smart, handsome, and funny."], analyzer) == pytest.approx(0.8316, abs=1e-4)
    assert science.vader_score(["The flood was a terrible disaster."], analyzer) < -0.5
    two = science.vader_score(["VADER is smart, handsome, and funny.", "The meeting is on Tuesday."], analyzer)
    assert two == pytest.approx(0.8316 / 2, abs=1e-4)
    assert science.vader_score([], analyzer) == 0.0


def test_split_sentences():
    text = "BOSTON: It rained. Was it bad?  No!  "
    assert science.split_sentences(text) == ["BOSTON: It rained.", "Was it bad?", "No!"]


@pytest.mark.parametrize(
    "text, state",
    [
        ("BOSTON: Sunny.", "Massachusetts"),
        ("Texas: Hot.", "Texas"),
        ("SALT  LAKE CITY : Snow.", "Utah"),
        ("WASHINGTON: Congress met.", "District of Columbia"),
        ("KARACHI: Markets rose.", "Karachi"),
    ],
)
def test_datelines_map_to_states(text, state):
    assert science.state_of(science.dateline(text)) == state


def test_text_without_a_dateline_has_no_place():
    assert science.dateline("No dateline here.") is None
    assert science.dateline("A very long opening sentence that merely contains a colon: like this") is None


def test_state_means_do_not_depend_on_arrival_order():
    values = [1e16, 1.0, -1e16, 0.1, 0.2, 0.3]
    means = {science.exact_mean(p) for p in itertools.permutations(values)}
    assert means == {1.6 / 6}


def test_top_happiest_ranks_by_mean_then_name():
    means = {"Ohio": (0.5, 3), "Iowa": (0.9, 1), "Utah": (0.5, 2), "Maine": (-0.2, 4)}
    assert science.top_happiest(means) == [
        {"state": "Iowa", "mean": 0.9, "articles": 1},
        {"state": "Ohio", "mean": 0.5, "articles": 3},
        {"state": "Utah", "mean": 0.5, "articles": 2},
    ]


# Boston's two articles are the happiest, then Houston, then Karachi (a place outside
# the US keeps its own name); Chicago is neutral, Detroit sad, and the last has no dateline.
CRAFTED = [
    "BOSTON: What a wonderful, happy day. Everyone loved the excellent parade.",
    "Boston: The team won a great victory.",
    "HOUSTON: Residents were glad and pleased to see the new park open.",
    "KARACHI: The market was calm and trading was fair.",
    "CHICAGO: The council met on Tuesday to discuss the budget.",
    "DETROIT: A terrible fire destroyed homes. Residents are angry and afraid.",
    "An article without a dateline, full of wonderful great excellent news.",
]


def write_kaggle_csv(path, rows, encoding="utf-8"):
    with open(path, "w", newline="", encoding=encoding) as f:
        writer = csv.writer(f)
        writer.writerow(["Article", "Date", "Heading", "NewsType"])
        for i, text in enumerate(rows):
            writer.writerow([text, f"1/{i + 1}/2015", f"Heading <b>{i}</b>", "business"])


def test_top3_of_a_crafted_article_set(tmp_path):
    path = tmp_path / "Articles.csv"
    write_kaggle_csv(path, CRAFTED)
    graph, inputs, info = build(csv=str(path))
    result = run(graph, inputs, "simple")
    assert info == {"work_s": 0.0, "articles": len(CRAFTED)}
    for method in ("afinn", "vader"):
        assert top3(result, method) == ["Massachusetts", "Texas", "Karachi"]
        (ranking,) = result.output(f"Top3Happiest{method.upper()}")
        assert ranking["method"] == method and ranking["states"] == 5
        assert ranking["top3"][0]["articles"] == 2


def test_the_csv_reader_cleans_html_and_reads_latin_1(tmp_path):
    path = tmp_path / "latin.csv"
    write_kaggle_csv(path, ["KARACHI: Caf\u00e9 prices <br/>rose.", "   "], encoding="latin-1")
    (article,) = read_articles_csv(str(path))
    assert article["text"] == "KARACHI: Caf\u00e9 prices rose." and article["heading"] == "Heading 0"
    bad = tmp_path / "bad.csv"
    bad.write_text("Title,Body\nx,y\n")
    with pytest.raises(UsageError, match="no column"):
        build(csv=str(bad))


def test_synthetic_top3_are_the_most_favoured_states():
    graph, inputs, info = build(articles=500)
    result = run(graph, inputs, "simple")
    favoured = sorted(US_STATES, key=lambda s: -state_bias(s))[:5]
    for method in ("afinn", "vader"):
        assert set(top3(result, method)) <= set(favoured)
    assert info["articles"] == 500 and result.metrics.items["HappyStateAFINN"] == 500


def test_the_graph_survives_pickling(multiset):
    graph, inputs, _ = build(articles=30)
    copy = pickle.loads(pickle.dumps(graph))
    copy_inputs = {copy.get(pe.name): n for pe, n in inputs.items()}
    assert multiset(run(copy, copy_inputs, "simple").outputs) == multiset(run(graph, inputs, "simple").outputs)


def test_each_branch_has_its_own_stateful_pes():
    graph, _, _ = build(articles=10)
    plan = make_plan(graph, HYBRID, 12, "hybrid_multi")
    assert plan.stateful == {"HappyStateAFINN", "HappyStateVADER", "Top3HappiestAFINN", "Top3HappiestVADER"}
    assert plan.instances["HappyStateAFINN"] == plan.instances["HappyStateVADER"] == 4
    assert len(plan.pinned) == 11 and plan.pool == 1  # the producer and 10 stateful instances


def test_a_dynamic_plan_refuses_the_stateful_graph():
    graph, _, _ = build(articles=10)
    with pytest.raises(UsageError, match="HappyStateAFINN.*hybrid_multi"):
        make_plan(graph, DYNAMIC, 4, "dyn_multi")


def test_dyn_multi_refuses_sentiment_with_a_clear_error():
    graph, inputs, _ = build(articles=10)
    with pytest.raises(UsageError, match="HappyState.*stateful.*hybrid_multi"):
        run(graph, inputs, "dyn_multi", 4)


def test_hybrid_multi_matches_simple(multiset):
    graph, inputs, _ = build(articles=120)
    expected = run(graph, inputs, "simple")
    got = run(graph, inputs, "hybrid_multi", 12)  # producer, 2 x 4 HappyState, 2 Top3 pinned; 1 worker
    assert multiset(got.outputs) == multiset(expected.outputs)


def test_latency_is_slept_per_article_by_each_scorer_and_recorded_as_work():
    graph, inputs, info = build(articles=20, latency=0.01)
    assert info["work_s"] == pytest.approx(2 * 20 * 0.01)
    assert {pe.latency for pe in graph.pes if hasattr(pe, "latency")} == {0.01}


@pytest.mark.parametrize("latency", [-1, "slow", True])
def test_a_bad_latency_is_a_usage_error(latency):
    with pytest.raises(UsageError, match="latency must be a number of seconds"):
        build(articles=5, latency=latency)
