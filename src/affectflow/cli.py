"""The ``affectflow`` command: demo data, model weights and quick inspection.

The workflow itself runs through ``snakemake``; this command covers what is
done outside a run (building the demo, fetching weights on a login node).
Errors the user can fix are printed as one line, without a traceback.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import logging
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from affectflow.core.errors import AffectflowError
from affectflow.core.vocabulary import TASKS
from affectflow.plan.rates import NODE_KINDS

if TYPE_CHECKING:
    from affectflow.models.catalogue.registry import ModelSpec
    from affectflow.models.catalogue.weight_file import WeightFile
    from affectflow.plan.estimate import Corpus, Models
    from affectflow.plan.rates import NodeRates

#: what ``affectflow --help`` opens with (the docstring above is for readers of the code)
DESCRIPTION = ("affectflow's command line: the demo dataset, model weights, submission files, bundles, a plan of a "
               "dataset's jobs and hours, and which settings rerun which stages. The workflow itself runs "
               "through snakemake (README.md).")

#: without --config the CLI reads no config.yaml: its --models-dir is where the workflow's models_dir points
MODELS_DIR_HELP = ("where the weights are (default ~/.cache/affectflow/models; without --config the CLI reads no "
                   "config.yaml, so pass the workflow's models_dir here); AFFECTFLOW_MODELS_DIR overrides it")


def _positive(kind: type[int] | type[float]):  # noqa: ANN202
    """An argparse ``type`` for counts and durations: a zero or negative value is a usage error, not a
    division by zero or a plan for no nodes later on."""
    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not (value > 0 and math.isfinite(value)):
            raise argparse.ArgumentTypeError(f"must be a finite number greater than 0, got {text}")
        return value
    return parse


def _version() -> str:
    """The installed distribution's version (pyproject.toml's, as pip installed it, and as ``pip show
    affectflow`` says): what a bug report needs to name."""
    try:
        return importlib.metadata.version("affectflow")
    except importlib.metadata.PackageNotFoundError:
        return "unknown (the affectflow package is not installed: pip install -e .)"


def _node_kinds_help() -> str:
    """``--node-kind``'s help: the default and what each kind is, so that a CPU user sees that the suggestion is
    for an H100 unless they say otherwise."""
    kinds = "; ".join(f"{k.name}: {k.description}" for k in NODE_KINDS.values())
    return ("the node kind n_shards is suggested for (default: h100 with the config's features.gpu true, cpu2 "
            "otherwise; the tables show every kind): " + kinds.replace("%", "%%"))


def _demo_build(args: argparse.Namespace) -> int:
    from affectflow.recipes.demo import build_from

    build_from(args)
    return 0


def _models_list(args: argparse.Namespace) -> int:
    from affectflow.models.catalogue import weights
    from affectflow.models.catalogue.registry import REGISTRY

    def source(s) -> str:  # noqa: ANN001
        if s.offline:
            return "offline"
        if not s.files:
            return "api"
        return "download" if all(wf.url for wf in s.files) else "unreleased"

    def where(s) -> str:  # noqa: ANN001
        """Where the model's weights go under the models directory: the file, or the folder of its files."""
        names = [wf.name for wf in s.files]
        if len(names) == 1:
            return names[0]
        if not names:
            return "-"
        folder = os.path.commonpath(names)
        return f"{folder}/ ({len(names)} files)"

    head = ("name", "modality", "family", "source", "licence", "file (under the models directory)")
    rows = [(s.name, s.modality, s.family, source(s), s.licence, where(s)) for s in
            REGISTRY.values() if args.modality in (None, s.modality)]
    widths = [max(len(str(r[i])) for r in [*rows, head]) for i in range(len(head))]
    for r in [head, *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    print(f"\nmodels directory: {weights.models_dir(args.models_dir)} (--models-dir, models_dir in the config; "
          f"{weights.ENV_MODELS_DIR} overrides both)")
    return 0


def _models_files(args: argparse.Namespace, action: str) -> int:
    from affectflow.models.catalogue import weights
    from affectflow.models.catalogue.registry import get
    from affectflow.plan.checks import ConfigError

    wanted = _wanted_weights(args)
    if not wanted.names:
        raise ConfigError(f"affectflow models {action}: name the models, or give --config to {action} the weights "
                          "of every model the config's run uses")
    root = weights.models_dir(args.models_dir or wanted.models_dir)
    specs = [get(name) for name in wanted.names]  # every name known before the first download
    failed: list[str] = []
    for spec in specs:
        if spec.name in wanted.standins:
            print(f"{spec.name}: a stand-in in this config (features.standins): the workflow builds it, nothing "
                  f"to {action}")
            continue
        for wf in wanted.files(spec):
            try:  # one file's problem is said and the others go on: a user pinning files wants them all at once
                path = weights.fetch(wf, root) if action == "fetch" else weights.ensure(wf, root, model=spec.name)
            except weights.WeightsError as e:
                print(f"affectflow: error: {e}", file=sys.stderr)
                failed.append(wf.name)
                continue
            print(f"{spec.name}: {path} ok (sha256 verified)")
    if failed:
        raise weights.WeightsError(f"{len(failed)} file(s) not {'fetched' if action == 'fetch' else 'verified'} "
                                   f"(above): {', '.join(failed)}")
    return 0


@dataclass
class _WantedWeights:
    """The models ``affectflow models fetch/verify`` handles and with which pins: those named on the command
    line, or with ``--config`` those its run fetches, with its ``model_pins`` (a file without a hash on record
    is only fetched once pinned) and its ``models_dir``."""

    names: list[str]
    pins: dict[str, str] = field(default_factory=dict)
    models_dir: str | None = None
    standins: frozenset[str] = frozenset()
    face_engine: str = "auto"

    def files(self, spec: ModelSpec) -> tuple[WeightFile, ...]:
        """The registry's files of ``spec`` with the config's pins; with ``face_engine: timm``, an EmotiEffLib
        model's pickled ``.pt`` too (what its face_features jobs read)."""
        from affectflow.models.catalogue import weights
        from affectflow.models.faces import engine_weight_file
        from affectflow.models.runtimes.emotiefflib import is_emotiefflib

        files = list(spec.files)
        if self.face_engine == "timm" and spec.modality == "face" and is_emotiefflib(spec):
            files.append(engine_weight_file(spec, "timm"))
        return weights.apply_pins(files, self.pins)


def _wanted_weights(args: argparse.Namespace) -> _WantedWeights:
    if not args.config:
        return _WantedWeights(list(dict.fromkeys(args.names)))
    from affectflow.plan.config import workflow_config
    from affectflow.stages.catalogue import STAGES
    from affectflow.stages.faces import FacesOptions

    config = workflow_config(args.config, args.workflow, replace=args.replace_workflow_config, stages=STAGES).config
    feats = config["features"]
    detector = FacesOptions.from_config(config).fetched_model()  # None: organiser's crops, MediaPipe
    run_models = [*([detector] if detector else []), *(n for k in ("face", "audio", "asr", "text")
                                                        for n in feats.get(k) or [])]
    models_dir = config.get("models_dir")
    if models_dir and not Path(models_dir).expanduser().is_absolute():
        models_dir = str(Path(args.workflow) / models_dir)  # the workflow's jobs read it from there
    return _WantedWeights(list(dict.fromkeys(args.names or run_models)), dict(config.get("model_pins") or {}),
                          models_dir, frozenset(feats.get("standins") or ()), feats.get("face_engine", "auto"))


def _reruns(args: argparse.Namespace) -> int:
    from affectflow.plan.rerun import rerun_table
    from affectflow.stages.catalogue import STAGES

    if args.config is None:
        print(rerun_table(STAGES), end="")
        return 0
    return _compare_keys(args)


def _compare_keys(args: argparse.Namespace) -> int:
    """``affectflow reruns CONFIG``: the run's shard files made under other keys than CONFIG plans (1 if any)."""
    import contextlib

    from affectflow.data.adapters import build_units
    from affectflow.data.units import UnitsError
    from affectflow.plan.checks import ConfigError
    from affectflow.plan.config import workflow_config
    from affectflow.plan.recorded import compare, existing_outputs, report
    from affectflow.plan.rerun import WorkflowKeys
    from affectflow.stages.catalogue import STAGES

    config_file = Path(args.config).resolve()
    wc = workflow_config(config_file, args.workflow, replace=args.replace_workflow_config, stages=STAGES)
    config = wc.config
    with contextlib.chdir(args.workflow):  # the units' paths as the workflow spells them (its keys hold them)
        try:
            units = build_units(config["datasets"], n_shards=config["n_shards"], base_dir=".")
        except (UnitsError, ValueError, OSError) as e:
            raise ConfigError(f"{args.config}: cannot build the units table: {e}") from None
        out = Path.cwd() / config["results_dir"] / config["run_name"]  # absolute: printed for any directory
        planned = list(existing_outputs(out, config, WorkflowKeys(config, units, STAGES), units.shards()))
        differ, unreadable = compare(planned)
    for line in report(differ, unreadable, len(planned), out):
        print(line)
    return 1 if differ else 0


def _bundle_inspect(args: argparse.Namespace) -> int:
    from affectflow.predict.bundle import Bundle

    print(Bundle.load(args.path).describe())
    return 0


def _submission_check(args: argparse.Namespace) -> int:
    from affectflow.submit.formats import check_submission

    problems = check_submission(args.task, args.file, args.template)
    for p in problems:
        print(f"{args.file}: {p}")
    if not problems:
        print(f"{args.file}: a valid {args.task} submission" + (f" for {args.template}" if args.template else ""))
    return 1 if problems else 0


def _plan(args: argparse.Namespace) -> int:
    from affectflow.data.adapters import build_units
    from affectflow.data.units import UnitsError
    from affectflow.plan.checks import ConfigError
    from affectflow.plan.config import workflow_config
    from affectflow.plan.estimate import (
        Models,
        count_units,
        plan_table,
        regrouped,
        setting_notes,
        size_notes,
        suggest_shards,
    )
    from affectflow.plan.scope import run_notes, run_tasks
    from affectflow.stages.catalogue import STAGES

    # the config the run gets: the workflow's config.yaml, the user's file merged on top, validated, the bundle's
    # models added (affectflow.plan.config does what the Snakefile and common.smk do)
    wc = workflow_config(args.config, args.workflow, replace=args.replace_workflow_config, stages=STAGES)
    config = wc.config
    n_shards = config["n_shards"]
    try:
        units = build_units(config["datasets"], n_shards=n_shards, base_dir=args.workflow)
    except (UnitsError, ValueError, OSError) as e:
        raise ConfigError(f"{args.config}: cannot build the units table: {e}") from None
    if not len(units):
        raise ConfigError(f"{args.config}: the datasets contain no videos")
    try:
        tasks = run_tasks(config, units, wc.bundle, args.workflow)  # as the workflow decides at its start
    except ConfigError as e:
        raise ConfigError(f"{args.config}: {e}") from None
    corpus = count_units(units, threads=args.threads, base_dir=args.workflow)
    models = Models.of(config)
    bad = [v for v in corpus.videos if v.problem]
    print(f"config: {' + '.join(wc.files)}" + (" (merged in this order, as snakemake does)" if len(wc.files) > 1
                                               else ""))
    for line in wc.notes:
        print(line)
    print(f"{len(corpus.videos)} video(s): {corpus.frames:,} frames, {corpus.audio_s / 3600:.3g} h of audio; "
          f"models: {len(models.face)} face, {models.audio} audio, {models.asr} ASR, {models.text} text")
    for line in [*tasks.skipped.values(), *tasks.no_tests.values(),
                 *run_notes(config, tasks.active, tasks.submitting)]:
        print(line)
    for v in bad:
        print(f"  cannot be probed (the media stage will skip it): {v.problem}")
    if not corpus.frames:
        raise ConfigError(f"{args.config}: none of its {len(corpus.videos)} video(s) can be probed (above); "
                          "nothing to plan")
    results = Path(args.workflow) / config["results_dir"] / config["run_name"] / "units.tsv"
    print(f"\nwith the config's n_shards: {n_shards} ({_filled(corpus, n_shards)})\n")
    moved = regrouped(results, units, n_shards)
    if moved:
        print(f"warning: n_shards {n_shards}: {moved}\n")
    print(plan_table(corpus, models, n_shards, nodes=args.nodes), end="")
    gpu = bool((config.get("features") or {}).get("gpu"))
    kind = NODE_KINDS[args.node_kind or ("h100" if gpu else "cpu2")]
    _say_time_limits(corpus, models, n_shards, kind)
    best = suggest_shards(corpus, kind, job_hours=args.job_hours, nodes=args.nodes, models=models)
    why = "--node-kind" if args.node_kind else f"features.gpu: {str(gpu).lower()}"
    print(f"\nsuggested n_shards for {kind.name} ({why}; {kind.description}), the longest job of each stage at "
          f"most {args.job_hours:g} h on {args.nodes} node(s): {best} ({_filled(corpus, best)})\n")
    moved = regrouped(results, units, best) if best != n_shards else ""
    if moved:
        print(f"warning: n_shards {best}: {moved}\n")
    print(plan_table(corpus, models, best, nodes=args.nodes), end="")
    _say_time_limits(corpus, models, best, kind, job_hours=args.job_hours)
    print("\nrates: " + "; ".join(f"{k.name} from {k.source}" for k in NODE_KINDS.values()))
    for line in [*size_notes(corpus), *setting_notes(models)]:
        print(line)
    return 0


def _say_time_limits(corpus: Corpus, models: Models, n_shards: int, kind: NodeRates,
                     job_hours: float | None = None) -> None:
    """A warning for each stage whose longest job on ``kind`` would outlast its time limit there (the rule's, or
    profiles/slurm-gpu's on a GPU node): on a cluster it would be killed (and retried with twice the limit,
    docs/cluster.md); with ``job_hours``, one for each stage whose longest job is still longer than that (a
    single long video can be)."""
    from affectflow.plan.estimate import longest_jobs_over
    from affectflow.plan.job_resources import time_limits

    limits = time_limits(kind.gpu)
    if job_hours is not None:
        for stage, hours in longest_jobs_over(corpus, models, n_shards, kind, job_hours * 3600.0).items():
            print(f"warning: n_shards {n_shards}: the longest {stage} job still takes {hours:.3g} h on {kind.name} "
                  f"(more shards cannot split a video)")
    for stage, hours in longest_jobs_over(corpus, models, n_shards, kind, {s: m * 60.0 for s, m in limits.items()}
                                          ).items():
        print(f"warning: n_shards {n_shards}: the longest {stage} job takes {hours:.3g} h on {kind.name}, over its "
              f"time limit of {limits[stage]} min there: raise n_shards, or the limit "
              f"(--set-resources {stage}:runtime=<minutes>)")


def _filled(corpus: Corpus, n_shards: int) -> str:
    """How many of ``n_shards`` hold videos: the workflow runs a job per stage for those only."""
    return f"{len(corpus.shards(n_shards))} of them hold videos: one job per stage each"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="affectflow", description=DESCRIPTION)
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    p.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = p.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="the bundled offline demo dataset")
    demo_sub = demo.add_subparsers(dest="demo_command", required=True)
    build = demo_sub.add_parser("build", help="build the demo videos and labels into OUT")
    from affectflow.recipes import demo_arguments

    demo_arguments(build)
    build.set_defaults(func=_demo_build)

    models = sub.add_parser("models", help="the model registry and weight files")
    models_sub = models.add_subparsers(dest="models_command", required=True)
    ls = models_sub.add_parser("list", help="every registered model")
    ls.add_argument("--modality", choices=["face", "audio", "text", "asr", "detector"])
    ls.add_argument("--models-dir", default=None, help=MODELS_DIR_HELP)
    ls.set_defaults(func=_models_list)
    for action, helptext in (("fetch", "download the weight files of NAMES (or of a config's models) and verify "
                              "their sha256"),
                             ("verify", "verify the sha256 of the weight files of NAMES (or of a config's models; "
                              "no download)")):
        a = models_sub.add_parser(action, help=helptext)
        a.add_argument("names", nargs="*", help="registry names (affectflow models list); with --config, "
                       "default: every model the config's run uses")
        a.add_argument("--config", default=None, help="the config given to snakemake --configfile: its "
                       "model_pins (the only way to fetch a file without a hash on record), its models_dir, "
                       "its stand-ins (skipped) and its face_engine (timm: the .pt files too)")
        a.add_argument("--workflow", default=".", help="with --config: the workflow's directory (default: the "
                       "current one)")
        a.add_argument("--replace-workflow-config", action="store_true",
                       help="with --config: CONFIG alone, not merged onto config.yaml (as snakemake's flag)")
        a.add_argument("--models-dir", default=None, help=MODELS_DIR_HELP + "; given, it wins over the config's")
        a.set_defaults(func=lambda ns, _a=action: _models_files(ns, _a))

    submission = sub.add_parser("submission", help="challenge submission files")
    submission_sub = submission.add_subparsers(dest="submission_command", required=True)
    check = submission_sub.add_parser("check", help="say what is wrong with a submission file (exit 1 if anything)")
    check.add_argument("task", choices=TASKS)
    check.add_argument("file")
    check.add_argument("--template", default=None, help="the organisers' example file the submission must match")
    check.set_defaults(func=_submission_check)

    bundle = sub.add_parser("bundle", help="trained pipelines written by a run (results/<run>/bundle)")
    bundle_sub = bundle.add_subparsers(dest="bundle_command", required=True)
    inspect = bundle_sub.add_parser("inspect", help="check every file's sha256 and print what the bundle holds")
    inspect.add_argument("path", help="the bundle folder (or its manifest.json)")
    inspect.set_defaults(func=_bundle_inspect)

    plan = sub.add_parser("plan", help="probe the config's videos and print each stage's jobs and hours per node "
                          "kind, with a suggested n_shards (rates from the recorded benchmarks)")
    plan.add_argument("config", help="the config given to snakemake --configfile (merged onto the workflow's "
                      "config.yaml, as snakemake does; its datasets, n_shards, features and bundle)")
    plan.add_argument("--workflow", default=".", help="the workflow's directory, where snakemake runs: its "
                      "config.yaml, its schema, and the base of relative paths (default: the current directory)")
    plan.add_argument("--replace-workflow-config", action="store_true",
                      help="CONFIG alone, not merged onto config.yaml (as snakemake's flag of that name)")
    plan.add_argument("--nodes", type=_positive(int), default=1, help="nodes the jobs spread over (default 1)")
    plan.add_argument("--node-kind", default=None, choices=list(NODE_KINDS), help=_node_kinds_help())
    plan.add_argument("--job-hours", type=_positive(float), default=1.0,
                      help="the longest job of each stage to aim for, in hours (default 1)")
    plan.add_argument("--threads", type=_positive(int), default=8, help="videos probed at once (default 8)")
    plan.set_defaults(func=_plan)

    reruns = sub.add_parser("reruns", help="which config settings rerun which stages (markdown table); with "
                            "CONFIG, the run's shard files made under other settings than CONFIG plans")
    reruns.add_argument("config", nargs="?", help="compare the keys this config plans with those the run's "
                        "media, faces, feature and transcript shards record (exit status 1 when some differ)")
    reruns.add_argument("--workflow", default=".", help="the workflow's directory, where snakemake runs "
                        "(default: the current one)")
    reruns.add_argument("--replace-workflow-config", action="store_true",
                        help="CONFIG alone, not merged onto config.yaml (as snakemake's flag of that name)")
    reruns.set_defaults(func=_reruns)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except (AffectflowError, OSError) as e:  # ours name the file and the problem; so do the system's
        if args.verbose:
            raise
        print(f"affectflow: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
