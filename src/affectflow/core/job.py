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
        """The job of a Snakemake ``script:`` (its ``snakemake`` object)."""
        log = smk.log[0] if len(smk.log) else None
        return cls(input=smk.input, output=smk.output, config=smk.config, params=smk.params,
                   wildcards=smk.wildcards, log=log, threads=int(smk.threads), rule=str(smk.rule))
