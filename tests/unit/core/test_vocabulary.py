"""The task vocabulary is defined once: the schema, the CLI and every stage use the same lists."""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from affectflow.cli import build_parser
from affectflow.core.vocabulary import BINARY_TASKS, TASKS, VIDEO_TASKS
from affectflow.data.adapters import ADAPTERS
from affectflow.evaluate.metrics import MAIN_METRIC
from affectflow.submit.formats import SUBMISSION_FILES

SCHEMA = Path(__file__).resolve().parents[3] / "workflow" / "schemas" / "config.schema.yaml"


def _subparser(parser: argparse.ArgumentParser, *names: str) -> argparse.ArgumentParser:
    for name in names:
        action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = action.choices[name]
    return parser


def test_the_schema_lists_the_tasks_and_adapters_the_code_knows() -> None:
    schema = yaml.safe_load(SCHEMA.read_text())["properties"]
    assert tuple(schema["tasks"]["items"]["enum"]) == TASKS
    assert set(schema["tasks"]["default"]) <= set(TASKS)
    assert tuple(schema["datasets"]["items"]["properties"]["adapter"]["enum"]) == ADAPTERS
    assert set(schema["learn"]["properties"]) == {"common", "sets", *TASKS}
    templates = set(schema["submission_template"]["properties"])
    assert templates == set(TASKS) - {"emi"}  # EMI has one row per video and no organisers' example


def test_every_task_has_a_metric_a_submission_file_and_a_cli_choice() -> None:
    assert set(MAIN_METRIC) == set(SUBMISSION_FILES) == set(TASKS)
    assert set(VIDEO_TASKS) <= set(TASKS) and set(BINARY_TASKS) <= set(TASKS)
    check = _subparser(build_parser(), "submission", "check")
    task = next(a for a in check._actions if a.dest == "task")
    assert tuple(task.choices) == TASKS


def test_no_module_keeps_its_own_copy_of_a_class_list() -> None:
    """The class lists are written once (core.vocabulary); a copy elsewhere (the demo recipe had one) could
    drift from the order every posterior column and submission value follows."""
    import ast

    import affectflow
    from affectflow.core import vocabulary

    lists = {tuple(x): name for name, x in (("EXPR_CLASSES", vocabulary.EXPR_CLASSES),
                                           ("EMI_EMOTIONS", vocabulary.EMI_EMOTIONS),
                                           ("AH_CLASSES", vocabulary.AH_CLASSES))}
    copies = []
    for path in sorted(Path(affectflow.__file__).parent.rglob("*.py")):
        if path.name == "vocabulary.py" and path.parent.name == "core":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.Tuple, ast.List)) and all(
                    isinstance(e, ast.Constant) and isinstance(e.value, str) for e in node.elts):
                values = tuple(e.value for e in node.elts)
                if values in lists:
                    copies.append(f"{path.name}:{node.lineno} {lists[values]}")
    assert copies == []
