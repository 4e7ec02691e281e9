"""Self-consistency voting: majority, ties to the shortest, share, label mapping."""

from __future__ import annotations

import pytest

from selfguide.methods.selfguide.consistency import clean_samples, vote, vote_samples


@pytest.mark.parametrize("answers, output, share, votes", [
    (["a", "a", "b"], "a", 2 / 3, {"a": 2, "b": 1}),
    (["long answer", "short", "long answer", "short"], "short", 0.5,
     {"short": 2, "long answer": 2}),                          # tie -> shortest
    (["bb", "aa"], "aa", 0.5, {"aa": 1, "bb": 1}),             # same length -> alphabetical
    (["", "", "x"], "x", 1 / 3, {"x": 1}),                     # empties count in the share
    (["", ""], "", 0.0, {}),
    ([], "", 0.0, {}),
])
def test_vote(answers, output, share, votes):
    v = vote(answers)
    assert v.output == output and v.share == pytest.approx(share) and v.votes == votes
    assert list(v.votes) == list(votes)  # most common first


def test_min_frequency_is_a_threshold_on_share():
    # 10 samples, winner has 2 -> share 0.2: kept at the paper's min_frequency 0.2, not at 0.3
    v = vote(["a", "a"] + [f"x{i}" for i in range(8)])
    assert v.output == "a" and v.share == pytest.approx(0.2)
    assert v.share >= 0.2 and not v.share >= 0.3


def test_labels_vote_together_after_mapping():
    labels = ("entails", "neutral")
    samples = [" Entails.", "entails", "Output: neutral", "NEUTRAL", "neutral\nbecause"]
    assert clean_samples(samples, labels) == ["entails", "entails", "neutral", "neutral",
                                              "neutral"]
    v = vote_samples(samples, labels)
    assert v.output == "neutral" and v.share == pytest.approx(0.6)


def test_unmappable_answer_votes_as_itself():
    v = vote_samples(["maybe", "maybe", "entails"], ("entails", "neutral"))
    assert v.output == "maybe"


# Generation: the share is the consensus answer's agreement, its mean ROUGE-L to the other
# samples (copies cannot be chosen but witness the agreement: 4/7 is ROUGE-L of "how do
# you do" and "how are you").
@pytest.mark.parametrize("samples, output, share", [
    (["how are you", "How are  you", "how do you do"], "how do you do", 4 / 7),
    (["how are you", "how are you"], "how are you", 1.0),        # only copies: copy wins
    (["hi there", "hi there", "how are you"], "hi there", 0.5),
])
def test_copies_of_the_input_do_not_win_unless_all_copy(samples, output, share):
    v = vote_samples(samples, source="How are you")
    assert v.output == output and v.share == pytest.approx(share)


# Where the demos edit lightly (issue 34) the input itself is a candidate and a witness: it
# wins when the samples scatter around it, and an edit wins only when the samples agree on it.
def test_the_input_is_a_candidate_where_the_demos_edit_lightly():
    from selfguide.evaluation.rouge import rouge_l

    source = "What is the best way to learn French?"
    scattered = ["What is the best way to study French?", "How can I learn French fast?",
                 "What is a good way to learn the French language?"]
    v = vote_samples(scattered, source=source, copies=True)
    assert v.output == source                       # no edit: the samples agree with it most
    assert v.share == pytest.approx(sum(rouge_l(source, s) for s in scattered) / 3)
    assert v.votes == {s: 1 for s in sorted(scattered, key=lambda x: (len(x), x))}
    assert source not in v.votes                    # votes count the samples only
    # Without the demos' light edits the input cannot win: the medoid of the samples does.
    assert vote_samples(scattered, source=source).output in scattered

    agreed = ["What is the best way to study French?"] * 3 + [source]
    v = vote_samples(agreed, source=source, copies=True)
    assert v.output == "What is the best way to study French?"   # the samples agree on it
    assert v.votes == {"What is the best way to study French?": 3, source: 1}


def test_copies_take_part_when_the_demos_copy():
    from selfguide.evaluation.rouge import rouge_l

    v = vote_samples(["how are you", "how are you", "how do you do"], source="How are you",
                     copies=True)
    assert v.output.casefold() == "how are you"     # the input or its copy: the same text
    assert v.share == pytest.approx((2 + rouge_l("how are you", "how do you do")) / 3)


def test_consensus_is_the_medoid_not_the_shortest_one_vote_answer():
    from selfguide.methods.selfguide.consistency import consensus

    v = consensus(["the cat sat on the mat", "a cat sat on a mat", "dogs run",
                   "the cat sat on a mat"])
    assert v.output == "the cat sat on a mat"  # exact vote: a 1-1-1-1 tie -> "dogs run"
    assert 0.5 < v.share < 0.6
    assert consensus(["same", "same", "same"]).share == 1.0
    assert consensus(["", ""]).output == "" and consensus(["only"]).share == 0.0
