"""What a workflow job hands its stage: one shape for every rule.

Each ``workflow/scripts/<rule>.py`` is one call after its imports: it wraps Snakemake's
``snakemake`` object in a :class:`Job` and calls ``affectflow.stages.<rule>.run``,
which sets up the job's log and does the work. So a stage's wiring (which
input is which, what the config says) lives, tested, in its stage module.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from affectflow.core.device import hide_unallocated_gpus


@dataclass(frozen=True)
class Job:
    """A job's named inputs, outputs, params and wildcards (Snakemake's named lists, or any objects with the
    same attributes), the workflow config, its log file, threads and rule name."""

    input: Any
    output: Any
    config: Mapping[str, Any]
    params: Any = None
    wildcards: Any = None
    log: str | None = None
    threads: int = 1
    rule: str = ""

    @classmethod
    def from_snakemake(cls, smk: Any) -> Job:
        """The job of a Snakemake ``script:`` (its ``snakemake`` object); a Slurm job that asked for no GPU sees
        none (:func:`~affectflow.core.device.hide_unallocated_gpus`), before anything starts CUDA."""
        resources = getattr(smk, "resources", None) or {}
        gres = str(resources.get("gres", "") or "")
        hide_unallocated_gpus(int(resources.get("gpu", 0) or 0) + ("gpu" in gres))
        log = smk.log[0] if len(smk.log) else None
        return cls(input=smk.input, output=smk.output, config=smk.config, params=smk.params,
                   wildcards=smk.wildcards, log=log, threads=int(smk.threads), rule=str(smk.rule))
