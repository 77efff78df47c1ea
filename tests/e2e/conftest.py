"""One complete real run of the default workflow on the demo, shared by the e2e modules."""

from __future__ import annotations

import pytest

from snakerun import make_workdir


@pytest.fixture(scope="session")
def done(tmp_path_factory):
    """The demo run to completion. Tests that change its files or config restore them before they end."""
    wd = make_workdir(tmp_path_factory.mktemp("wf"))
    wd.run()
    return wd
