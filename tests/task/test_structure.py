"""The structure the demos' inputs share (issue 39): inferred from the demos alone, scored
per text, empty when the demos share nothing."""

from __future__ import annotations

import pytest

from selfguide.task.structure import InputTemplate, infer_template, template_share

NLI = ["Premise: Lyme disease is caused by a bacterium. \n Hypothesis: Lyme disease is caused "
       "by bacteria.", "Premise: Corolla is all the petals. \n Hypothesis: The petals are a "
       "corolla.", "Premise: This can be dangerous. \n Hypothesis: Nematodes are parasites."]
PAIRS = ["Sentence 1: Next to the MGM Grand you will find M and M World. Sentence 2: The candy "
         "has many fans.", "Sentence 1: I've forgotten his name. Sentence 2: Tuppence "
         "remembered.", "Sentence 1: One realignment. Sentence 2: The office is realigned."]
COREF = ["The man saw _his_ dog. <sep>, Pronoun: his <sep>, A: John <sep>, B: Bill",
         "Mary met _her_ aunt. <sep>, Pronoun: her <sep>, A: Mary <sep>, B: Sue",
         "_He_ left early. <sep>, Pronoun: He <sep>, A: Tom <sep>, B: Jim"]
STANCE = ["claim: Cats are great.\nperspective: They purr.",
          "claim: Tax is bad.\nperspective: It funds schools.",
          "claim: School uniforms help.\nperspective: They cost families money."]
FREE = ["What can one do after MBBS?", "Which is the best book on tensors?",
        "What are the coolest Android hacks and tricks you know?"]


@pytest.mark.parametrize("demos,markers,span,lines,prefix", [
    (NLI, ("Premise:", "Hypothesis:"), None, 2, "Premise:"),
    (PAIRS, ("Sentence 1:", "Sentence 2:"), None, None, "Sentence 1:"),
    (COREF, ("<sep>", "Pronoun:", "<sep>", "A:", "<sep>", "B:"), "_x_", None, ""),
    (STANCE, ("claim:", "perspective:"), None, 2, "claim:"),
])
def test_the_template_is_what_every_demo_shares(demos, markers, span, lines, prefix):
    t = infer_template(demos)
    assert (t.markers, t.span, t.lines, t.prefix) == (markers, span, lines, prefix)
    assert all(t.score(d) == 1.0 for d in demos)


def test_free_text_demos_share_no_structure_and_nothing_is_scored_down():
    t = infer_template(FREE)
    assert t.empty and t.describe() == "no shared structure"
    assert t.score("anything at all") == 1.0
    assert infer_template(FREE[:1]).empty  # one demo shows no pattern


def test_a_colon_in_one_demo_only_is_not_a_field():
    t = infer_template(["Note: tea is hot.", "Coffee is strong.", "Juice: sweet."])
    assert t.empty


@pytest.mark.parametrize("text,score", [
    ("Premise: A cat sat. \n Hypothesis: An animal sat.", 1.0),
    ("Premise: A cat sat on the mat and an animal sat too.", 1 / 3),  # no hypothesis, 1 line
    ("Hypothesis: An animal sat. \n Premise: A cat sat.", 2 / 3),  # out of order, 2 lines
    ("A cat sat. An animal sat.", 0.0),
])
def test_score_counts_markers_in_order_and_the_line_count(text, score):
    assert infer_template(NLI).score(text) == pytest.approx(score)


def test_coref_text_without_the_marked_span_or_options_scores_low():
    t = infer_template(COREF)
    assert t.score("John saw the dog and he was happy.") == 0.0
    assert t.score("The cat saw _his_ owner. <sep>, Pronoun: his <sep>, A: Ann <sep>, B: Bo") \
        == 1.0
    assert t.describe().startswith("<sep> … Pronoun: … <sep> … A: …")


def test_share_and_round_trip():
    t = infer_template(STANCE)
    assert template_share(["claim: a\nperspective: b", "perspective: b"], t) == 0.5
    assert template_share([], t) == 1.0
    assert InputTemplate.from_dict(t.to_dict()) == t
    assert InputTemplate.from_dict(["not", "a", "dict"]).empty
