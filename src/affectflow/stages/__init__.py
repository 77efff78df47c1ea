"""One module per Snakemake rule, named like the rule and its script in workflow/scripts/.

Each holds the stage's options class, its code version (``STAGE_VERSION``), its
declaration (``STAGE``: name, rules, what reruns after it), the library entry
``run_<rule>`` and the rule's ``run(job)``; :mod:`affectflow.stages.catalogue`
collects the declarations.
"""
