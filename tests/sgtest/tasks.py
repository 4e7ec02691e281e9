"""Task dicts several test files share: a user's own three-label task; a two-label task
whose demos' inputs share a structure (``Premise: … Hypothesis: …``)."""

TICKETS = {
    "name": "tickets", "task_type": "classification",
    "instruction": "Route the support ticket: billing, technical or other.",
    "labels": ["billing", "technical", "other"], "metric": "exact_match",
    "examples": [{"input": "I was charged twice this month.", "output": "billing"},
                 {"input": "The app crashes when I log in.", "output": "technical"},
                 {"input": "Do you have an office in Lyon?", "output": "other"}],
}

NLI = {
    "name": "nli", "instruction": "Does the premise entail the hypothesis?",
    "task_type": "classification", "labels": ["entails", "neutral"], "metric": "exact_match",
    "examples": [
        {"input": "Premise: Cats purr. \n Hypothesis: Cats make sounds.", "output": "entails"},
        {"input": "Premise: It rained. \n Hypothesis: The match was won.", "output": "neutral"},
        {"input": "Premise: Ice is cold. \n Hypothesis: Ice is frozen water.",
         "output": "entails"}],
}
