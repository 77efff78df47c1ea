"""One module per Snakemake rule, named like the rule and its script in workflow/scripts/.

Each holds the stage's options class, its code version (``STAGE_VERSION``) and
the function the rule's script calls; :data:`affectflow.plan.rerun.STAGES`
lists them with the outputs they write and what reruns after them.
"""
