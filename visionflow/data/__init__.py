"""Data sources: synthetic generators, release-layout parsers, TFDS builders, data reports."""
