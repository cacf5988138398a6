"""The two IFEval checkers that split sentences run offline on NLTK's Punkt model from a pinned package,
and nothing loads a pickle on the way."""

import json
import subprocess
import sys

import pytest

from transforms.judges.ifeval_verifier import verify

# Three sentences: "Dr." and "p.m." are abbreviations in the English model, not sentence ends.
THREE_SENTENCES = "Dr. Smith went home at 5 p.m. on Monday. He was tired. Was it the rain?"
# Three words in capitals (NASA, FBI, OK); "The" and "They" only start with one.
THREE_CAPITAL_WORDS = "The NASA team met the FBI. They said OK to the plan."


def followed(response: str, instruction_id: str, kwargs: dict) -> bool:
    verdict = verify(response, [instruction_id], [kwargs], "prompt")
    assert not verdict.error, verdict.error
    return verdict.strict[0]


@pytest.mark.parametrize("relation, n, expected", [
    ("at least", 3, True), ("at least", 4, False), ("less than", 3, False), ("less than", 4, True)])
def test_number_sentences_counts_three(relation, n, expected):
    assert followed(THREE_SENTENCES, "length_constraints:number_sentences",
                    {"relation": relation, "num_sentences": n}) is expected


def test_sentences_split_where_a_reader_would():
    from if_verifiable.ifeval import instructions_util

    verify("x", ["punctuation:no_comma"], [{}], "prompt")  # loads the checkers, and with them the model
    assert instructions_util.count_sentences(THREE_SENTENCES) == 3
    assert instructions_util.count_sentences("One sentence without an end") == 1
    assert instructions_util.count_sentences("Mr. Jones left. Mrs. Jones stayed! Did Ms. Lee go?") == 3


@pytest.mark.parametrize("relation, n, expected", [
    ("at least", 3, True), ("at least", 4, False), ("less than", 3, False), ("less than", 4, True)])
def test_capital_word_frequency_counts_three(relation, n, expected):
    assert followed(THREE_CAPITAL_WORDS, "change_case:capital_word_frequency",
                    {"capital_relation": relation, "capital_frequency": n}) is expected


PROBE = """
import json, sys
events = []
def hook(event, args):
    if event == "pickle.find_class" or (event == "open" and str(args[0]).endswith((".pickle", ".pkl"))):
        events.append([event, str(args[0])])
sys.addaudithook(hook)

import nltk
from transforms.judges import punkt_model
from transforms.judges.ifeval_verifier import verify

sentences = verify(sys.argv[1], ["length_constraints:number_sentences"], [{"relation": "at least", "num_sentences": 3}], "p")
capitals = verify(sys.argv[2], ["change_case:capital_word_frequency"],
                  [{"capital_relation": "at least", "capital_frequency": 3}], "p")
found = str(nltk.data.find("tokenizers/punkt_tab/english/"))
print(json.dumps({"verdicts": [sentences.strict[0], capitals.strict[0]], "errors": [sentences.error, capitals.error],
                  "pickles": events, "from_ours": found.startswith(punkt_model.install())}))
"""


def test_no_pickle_is_loaded_and_the_model_is_the_packaged_one():
    """A fresh process, watched by an audit hook: no unpickling (every pickled class is looked up through
    `pickle.find_class`) and no .pickle file opened, while both checkers pass on the model written from the package."""
    run = subprocess.run([sys.executable, "-c", PROBE, THREE_SENTENCES, THREE_CAPITAL_WORDS],
                         capture_output=True, text=True, check=True, timeout=120)
    seen = json.loads(run.stdout.strip().splitlines()[-1])
    assert seen["errors"] == ["", ""] and seen["verdicts"] == [True, True]
    assert seen["pickles"] == []
    assert seen["from_ours"]
