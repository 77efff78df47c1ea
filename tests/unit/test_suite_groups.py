"""The test suite's own scheduling: ``make test`` relies on each group staying on one xdist worker."""

from __future__ import annotations

import pytest


def test_xdist_sees_this_files_group(request: pytest.FixtureRequest) -> None:
    """xdist reads the groups into the test ids in its own collection hook; tests/conftest.py must mark them
    before it, or every test is scheduled alone and each worker starts its own Slurm cluster and demo run."""
    if not request.config.getoption("loadgroup", default=False):
        pytest.skip("not run with --dist loadgroup (make test uses it)")
    assert request.node.nodeid.endswith("@tests/unit/test_suite_groups.py"), request.node.nodeid
