"""One line for a YAML file that does not parse: where, and what the parser found there.

PyYAML's message spans several lines (the context, the problem, each with its place); the first of them
says only "while parsing a block mapping", which in a label file of tens of MB leaves the user nothing to
look for. The problem and its line and column are what a user can act on.
"""

from __future__ import annotations

import yaml


def yaml_problem(error: yaml.YAMLError) -> str:
    """``line L, column C: <problem>`` for a parser error with a place; otherwise the message's first line."""
    if isinstance(error, yaml.MarkedYAMLError) and error.problem and error.problem_mark is not None:
        mark = error.problem_mark
        return f"line {mark.line + 1}, column {mark.column + 1}: {error.problem}"
    text = str(error)
    return text.splitlines()[0] if text else type(error).__name__
