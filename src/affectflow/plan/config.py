"""The config a run of the workflow sees, for commands that read a config outside a run (``affectflow plan``).

Why: ``snakemake --configfile mine.yaml`` does not run ``mine.yaml`` alone.
The Snakefile's ``configfile:`` directive loads the workflow's ``config.yaml``
and Snakemake merges the command line's file on top (nested mappings key by
key, everything else replaced); the Snakefile then validates the result
against the schema, which also fills in the schema's defaults, and
``common.smk`` merges an applied bundle's models and checks that the keys fit
together. A command that read ``mine.yaml`` alone would plan another run than
the one that happens (no face models, one shard). So this module does the same
steps with the same functions (Snakemake's own loader and merge, the same
schema, :func:`~affectflow.plan.scope.merge_bundle`,
:func:`~affectflow.plan.checks.check_config`), and turns every failure into one
:class:`~affectflow.plan.checks.ConfigError` line that names the file.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from affectflow.core.yaml_errors import yaml_problem
from affectflow.plan.checks import ConfigError, check_config, schema_problem
from affectflow.plan.scope import check_bundle_weights, merge_bundle
from affectflow.predict.bundle import Bundle, BundleError

if TYPE_CHECKING:
    from affectflow.plan.rerun import Stage

#: the Snakefile's ``configfile:`` (relative to the directory Snakemake runs in)
DEFAULTS = "config.yaml"
#: the schema the Snakefile validates the config with (relative to the Snakefile's directory)
SCHEMA = "workflow/schemas/config.schema.yaml"


@dataclass
class WorkflowConfig:
    """The config as the workflow's parse-time checks leave it, and where it came from (for the log)."""

    config: dict[str, Any]
    files: list[str]  # the files merged, in order (the workflow's defaults first when used)
    notes: list[str] = field(default_factory=list)  # what an applied bundle changed (as the workflow logs it)
    bundle: Bundle | None = None  # the applied bundle, verified


def load_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """One config file read with Snakemake's own loader (JSON, else YAML), or a :class:`ConfigError` naming it:
    not found, not JSON or YAML (with YAML's line and column), or not a mapping of keys."""
    from snakemake.common.configfile import load_configfile
    from snakemake.exceptions import WorkflowError

    if not Path(path).is_file():
        raise ConfigError(f"{path}: no such config file" + (" (it is a directory)" if Path(path).is_dir() else ""))
    try:
        return dict(load_configfile(str(path)))
    except WorkflowError as e:
        raise ConfigError(f"{path}: {_load_problem(e)}") from None


def _load_problem(error: BaseException) -> str:
    """Snakemake's message for a file it cannot load, with the YAML parser's position where there is one."""
    import yaml

    cause = error.__cause__ or error.__context__
    if isinstance(cause, yaml.MarkedYAMLError):
        if cause.problem and cause.problem_mark is not None:
            return f"not valid YAML ({yaml_problem(cause)})"
        # yte re-raises the parser's error with its whole text as the context
        text = cause.context or str(cause)
        found = re.search(r"line (\d+), column (\d+)", text)
        line, column = (int(found[1]), int(found[2])) if found else (0, 0)
        kept = [x.strip() for x in text.splitlines() if x.strip() and not x.strip().startswith(("in ", "Note "))]
        what = kept[-1] if kept else "cannot be parsed"
        return f"not valid YAML ({f'line {line}, column {column}: ' if line else ''}{what})"
    if "keys at top level" in str(error):
        return "not a config: a YAML or JSON mapping of config keys is expected at the top level"
    return str(error).splitlines()[0] if str(error) else type(error).__name__


class ConfigConflict(ConfigError):
    """Keys of the config contradict each other (:func:`~affectflow.plan.checks.check_config`)."""


def settle_config(config: dict[str, Any], stages: Mapping[str, Stage] | None,
                  workflow_dir: str | os.PathLike[str] = ".") -> tuple[Bundle | None, list[str]]:
    """What the workflow does to the config Snakemake merged, before it plans a job (the Snakefile calls this,
    and so does :func:`workflow_config`): validated against the schema, its defaults set, the feature sets set
    to null taken out; an applied bundle
    (``bundle:``, relative to ``workflow_dir``) loaded, verified and its models and feature settings merged
    in; with ``stages`` given, the keys checked against each other. Returns the bundle and the lines saying
    what it changed; a problem is one :class:`ConfigError` (:class:`ConfigConflict` for contradicting keys).
    """
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    from affectflow.core.options import OptionsError

    root = Path(workflow_dir)
    drop_removed_sets(config)  # before the schema, which fills in a fusion's defaults
    try:
        validate(config, str((root / SCHEMA).resolve()))
    except WorkflowError as e:
        raise ConfigError(schema_problem(e)) from None
    bundle, notes = None, []
    if config.get("bundle"):
        path = Path(config["bundle"])
        try:
            bundle = Bundle.load(path if path.is_absolute() else root / path)
        except BundleError as e:
            raise ConfigError(f"bundle: {e}") from None
        added = {} if stages is None else {s.options.SECTION: s.options.added_defaults() for s in stages.values()}
        notes = merge_bundle(config, bundle, added).lines(bundle)
        check_bundle_weights(config, bundle)
    if stages is not None:
        try:
            check_config(config, stages)
        except (ConfigError, OptionsError) as e:
            raise ConfigConflict(str(e)) from None
    return bundle, notes


def drop_removed_sets(config: dict[str, Any]) -> None:
    """Take out the feature sets and fusions set to null. Snakemake merges a ``--configfile`` onto
    ``config.yaml`` key by key, so a user's file can replace a set but not leave one out;
    ``feature_sets: {enet: null}`` is how it drops one whose model it does not run, and
    ``fusions: {fer_text: null}`` a fusion of sets it dropped."""
    for section in ("feature_sets", "fusions"):
        entries = config.get(section)
        for name in [k for k, v in entries.items() if v is None] if isinstance(entries, dict) else []:
            del entries[name]


def workflow_config(configfile: str | os.PathLike[str], workflow_dir: str | os.PathLike[str] = ".",
                    replace: bool = False, stages: Mapping[str, Stage] | None = None) -> WorkflowConfig:
    """The config ``snakemake --configfile CONFIGFILE`` runs with from ``workflow_dir``.

    As the workflow does, in order: ``workflow_dir/config.yaml`` loaded (when it exists; ``replace``: not at all,
    as ``--replace-workflow-config``), ``configfile`` merged on top (``snakemake.utils.update_config``), the
    result validated against the workflow's schema with its defaults set, the bundle (``bundle:``, relative to
    ``workflow_dir``) merged in, and, with ``stages`` given, the cross-key checks. Any problem: a
    :class:`ConfigError` naming ``configfile`` (the file with the problem), one line a problem.
    """
    from snakemake.utils import update_config

    root = Path(workflow_dir)
    schema = root / SCHEMA
    if not schema.is_file():
        raise ConfigError(f"{root.resolve()}: not the workflow's directory (no {SCHEMA}); run in the directory "
                          "snakemake runs in, or name it with --workflow")
    defaults = root / DEFAULTS
    config: dict[str, Any] = {}
    files: list[str] = []
    if not replace and defaults.is_file() and defaults.resolve() != Path(configfile).resolve():  # (same: once)
        config = load_file(defaults)
        files.append(str(defaults))
    update_config(config, load_file(configfile))
    files.append(str(configfile))
    try:
        bundle, notes = settle_config(config, stages, root)
    except ConfigConflict as e:
        merged = (f"\n  ({configfile} is merged onto {files[0]}, as snakemake --configfile merges it; a complete "
                  "config runs alone with --replace-workflow-config)") if len(files) > 1 else ""
        raise ConfigError(f"{configfile}: {e}{merged}") from None
    except ConfigError as e:
        raise ConfigError(f"{configfile}: {e}") from None
    return WorkflowConfig(config, files, notes, bundle)
