"""Which existing extraction outputs were made under another rerun key than a config plans.

Why: Snakemake decides that a job must rerun from its own record of the job's parameters, kept in the
working directory (``.snakemake/metadata/``), not beside the results. A results folder moved or copied,
read from another checkout of the workflow, or a removed ``.snakemake/`` leaves outputs without that
record, and Snakemake then plans nothing for them, even for an option changed since: shards made under
two settings would be mixed without a word. Every shard file carries the key it was made under (its
provenance, :class:`affectflow.io.store.Provenance`), so comparing those with the keys the config plans
says what Snakemake cannot, for the per-shard stages where a missed rerun hides longest.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from affectflow.io.store import ShardReader, StoreError
from affectflow.plan.rerun import WorkflowKeys
from affectflow.plan.shard_outputs import shard_outputs

#: the per-shard stages compared, in workflow order
STAGES = ("media", "faces", "face_features", "audio_features", "transcripts", "text_features")


@dataclass(frozen=True)
class Planned:
    """An existing output of a per-shard stage and the key the config plans for it."""

    stage: str
    path: Path
    key: str


@dataclass(frozen=True)
class Differs:
    """An output whose recorded key is not the planned one, and how they differ (``changes``)."""

    stage: str
    path: Path
    changes: tuple[str, ...]


def existing_outputs(out: Path, config: Mapping[str, Any], keys: WorkflowKeys,
                     shards: Iterable[str]) -> Iterator[Planned]:
    """The shard files under ``out`` (a run's results folder) that the config's workflow plans, with their keys.

    The paths are the rules' output patterns (:func:`~affectflow.plan.shard_outputs.shard_outputs`), those of
    :data:`STAGES`; a file for a shard, model or detector the config does not plan is not compared.
    """
    for shard in sorted(shards):
        for o in shard_outputs(out, config, shard):
            if o.stage not in STAGES or not o.path.is_file():
                continue
            key = (keys.media(shard) if o.stage == "media" else keys.faces(shard) if o.stage == "faces" else
                   keys.model_stage(o.stage, o.model))
            yield Planned(o.stage, o.path, key)


def compare(planned: Iterable[Planned]) -> tuple[list[Differs], list[str]]:
    """The outputs whose recorded key differs from the planned one, and the files that could not be read
    (cut short, not a shard: the workflow's jobs say so when they read them)."""
    differ: list[Differs] = []
    unreadable: list[str] = []
    for p in planned:
        try:
            with ShardReader(p.path) as reader:
                recorded = reader.provenance.rerun_key
        except (OSError, StoreError) as e:
            unreadable.append(f"{p.path}: {e}")
            continue
        if recorded != p.key:
            differ.append(Differs(p.stage, p.path, key_changes(recorded, p.key)))
    return differ, unreadable


def key_changes(recorded: str, planned: str) -> tuple[str, ...]:
    """What differs between two key texts, one ``field: recorded -> planned`` line each (``units``: which
    videos the shard holds, or their files)."""
    try:
        old, new = _flat(json.loads(recorded)) if recorded else {}, _flat(json.loads(planned))
    except ValueError:
        return ("the recorded key is not a rerun key",)
    out = []
    for field in sorted(set(old) | set(new)):
        if old.get(field) != new.get(field):
            if field == "units":
                out.append("units: the shard's videos or their files changed")
            else:
                out.append(f"{field}: {_shown(old.get(field))} -> {_shown(new.get(field))}")
    return tuple(out)


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: value}


def _shown(value: Any) -> str:
    return "(none)" if value is None else json.dumps(value)


def report(differ: list[Differs], unreadable: list[str], compared: int, out: str | os.PathLike[str]) -> list[str]:
    """What ``affectflow reruns CONFIG`` prints: one line per stage with outputs made under other keys."""
    lines = [f"{out}: {compared} shard file(s) of {', '.join(STAGES)} compared with the keys this config plans"]
    by_stage: dict[str, list[Differs]] = {}
    for d in differ:
        by_stage.setdefault(d.stage, []).append(d)
    for stage, found in by_stage.items():
        changes = list(dict.fromkeys(c for d in found for c in d.changes))
        shown = ", ".join(str(d.path) for d in found[:3]) + (f" and {len(found) - 3} more" if len(found) > 3 else "")
        lines.append(f"{stage}: {len(found)} file(s) made under another key ({'; '.join(changes[:4])}): {shown}")
    lines += [f"cannot be read: {u}" for u in unreadable]
    if differ:
        rules = " ".join(by_stage)
        lines.append("Snakemake reruns these (and what reads them) only where the working directory's .snakemake/ "
                     "recorded their jobs; if `snakemake -n` plans none of them (results moved or copied, another "
                     f"checkout, .snakemake/ removed), remake them with: snakemake --forcerun {rules} ...")
    else:
        lines.append("every one was made under the key this config plans")
    return lines


def unrecorded_start_warning(out: Path, config: Mapping[str, Any], keys: WorkflowKeys,
                             shards: Iterable[str]) -> list[str]:
    """The workflow's start in a working directory where Snakemake has kept no records yet: the lines of
    :func:`report` when some existing shard file was made under another key than planned, else none.

    That is the case of a fresh checkout (or a removed ``.snakemake/``) pointed at earlier results, where
    Snakemake would plan nothing for a changed option. Elsewhere Snakemake's records decide, and
    ``affectflow reruns CONFIG`` compares on demand.
    """
    planned = list(existing_outputs(out, config, keys, shards))
    differ, unreadable = compare(planned)
    if not differ:
        return []
    return report(differ, unreadable, len(planned), out)
