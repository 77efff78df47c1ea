"""The media stage's options: audio is always 16 kHz mono, a fact its rerun key still carries."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from affectflow.core.options import OptionsError
from affectflow.plan.rerun import stage_key
from affectflow.stages.catalogue import STAGES
from affectflow.stages.media import MediaOptions

REPO = Path(__file__).resolve().parents[3]
SCHEMA = str(REPO / "workflow" / "schemas" / "config.schema.yaml")
#: the media key of the demo config when `media.sample_rate` was still an option: removing it reran nothing
KEY_WITH_THE_OPTION = ('{"models":{},"options":{"on_bad_video":"skip","sample_rate":16000},"stage":"media",'
                       '"units":"","version":%d}')


def _demo_config() -> dict:
    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    validate(cfg, SCHEMA)
    return cfg


def test_the_key_still_carries_the_sample_rate() -> None:
    from affectflow.stages.media import STAGE_VERSION

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the demo config sets nothing removed
        opts = MediaOptions.from_config(_demo_config())
    assert "sample_rate" not in MediaOptions.config_fields()
    assert opts.output_options() == {"on_bad_video": "skip", "sample_rate": 16000}
    assert stage_key(STAGES["media"], opts).text == KEY_WITH_THE_OPTION % STAGE_VERSION
    assert MediaOptions(on_bad_video="fail").output_options() == {"on_bad_video": "fail", "sample_rate": 16000}


def test_a_config_that_still_sets_the_sample_rate_is_told_to_delete_it() -> None:
    cfg = _demo_config()
    cfg["media"] = {"sample_rate": 16000}
    validate(cfg, SCHEMA)  # an older config still runs ...
    with pytest.warns(FutureWarning, match=r"media.sample_rate was removed .*delete it"):
        opts = MediaOptions.from_config(cfg)
    assert opts == MediaOptions()  # ... unchanged, under the same key
    cfg["media"] = {"sample_rate": 44100}
    with pytest.raises(OptionsError, match=r"media.sample_rate was removed: audio is always 16000 Hz mono; got 44100"):
        MediaOptions.from_config(cfg)
    with pytest.raises(WorkflowError, match="16000 was expected"):
        validate(cfg, SCHEMA)
    with pytest.raises(OptionsError, match=r"unknown media option\(s\) \['rate'\]"):
        MediaOptions.from_mapping({"rate": 16000})
