"""Submission files in the organisers' formats: writers, readers, templates and the checker."""
