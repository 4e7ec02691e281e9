"""Stage configurations: one frozen dataclass module per stage."""
