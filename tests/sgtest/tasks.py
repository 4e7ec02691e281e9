"""Task dicts several test files share: a user's own three-label task."""

TICKETS = {
    "name": "tickets", "task_type": "classification",
    "instruction": "Route the support ticket: billing, technical or other.",
    "labels": ["billing", "technical", "other"], "metric": "exact_match",
    "examples": [{"input": "I was charged twice this month.", "output": "billing"},
                 {"input": "The app crashes when I log in.", "output": "technical"},
                 {"input": "Do you have an office in Lyon?", "output": "other"}],
}
