"""The adapter registry: every layout is a module that registers its config name; lookups read the registry."""

from __future__ import annotations

from pathlib import Path

import pytest

from affectflow.data.adapters import (
    ADAPTERS,
    DatasetEntry,
    FoundUnits,
    LabelError,
    build_units,
    get_adapter,
    register_adapter,
)
from affectflow.data.adapters import registry as registry_module
from affectflow.data.units import Unit, shard_of
from affectflow.testing.dataset_fixtures import make_videos

MODULES = {
    "affwild2": "affwild2_expr",
    "hume_vidmimic2": "hume_vidmimic",
    "bah": "bah_frames",
    "bah_video": "bah_video",
    "folder": "folder",
    "table": "table",
}


def test_each_adapter_is_registered_by_its_own_module_in_the_schema_order() -> None:
    assert ADAPTERS == tuple(MODULES)
    for name, module in MODULES.items():
        adapter = get_adapter(name, "here")
        assert adapter.name == name
        assert adapter.build.__module__ == f"affectflow.data.adapters.{module}"


@pytest.mark.parametrize("value", ["kinetics", None, ["folder"], 3])
def test_an_unknown_adapter_names_the_registered_ones(value: object) -> None:
    with pytest.raises(LabelError) as info:
        build_units([{"adapter": value, "videos": "v"}], 2)
    assert str(info.value) == f"datasets[0]: unknown adapter {value!r}, expected one of {ADAPTERS}"


def test_a_name_registered_twice_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry_module, "_REGISTRY", dict(registry_module._REGISTRY))
    with pytest.raises(ValueError, match="'folder' registered twice"):
        register_adapter("folder", check=lambda entry: None)(lambda entry, n, base: FoundUnits([]))


def test_a_registered_adapter_is_used_by_build_units(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry_module, "_REGISTRY", dict(registry_module._REGISTRY))
    make_videos(tmp_path / "v", ["x.mp4"])
    seen: list[DatasetEntry] = []

    def check(entry: DatasetEntry) -> None:
        if not entry.videos:
            raise LabelError(f"{entry.where}: needs videos")

    @register_adapter("one_video", check=check)
    def one_video(entry: DatasetEntry, n_shards: int, base: Path) -> FoundUnits:
        seen.append(entry)
        return FoundUnits([Unit("x", f"{entry.videos}/x.mp4", "test", shard_of("x", n_shards))])

    assert "one_video" in registry_module.adapter_names()
    table = build_units([{"adapter": "one_video", "videos": "v", "labels": None}], 3, tmp_path)
    assert [(u.video_id, u.path) for u in table] == [("x", "v/x.mp4")]
    assert seen == [DatasetEntry("one_video", "datasets[0] (one_video)", videos="v")]
    with pytest.raises(LabelError, match=r"datasets\[0\] \(one_video\): needs videos"):
        build_units([{"adapter": "one_video"}], 3, tmp_path)


def test_an_adapter_that_finds_nothing_is_an_error_naming_the_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry_module, "_REGISTRY", dict(registry_module._REGISTRY))
    register_adapter("nothing", check=lambda entry: None)(lambda entry, n, base: FoundUnits([]))
    with pytest.raises(LabelError, match=r"datasets\[0\] \(nothing\): no units found in v "):
        build_units([{"adapter": "nothing", "videos": "v"}], 3, tmp_path)


def test_entry_keys_outside_the_schema_are_rejected_before_any_file_is_read() -> None:
    with pytest.raises(LabelError, match=r"datasets\[0\] \(bah\): unknown keys \['label', 'video'\]"):
        build_units([{"adapter": "bah", "video": "v", "label": "l"}], 2, "/nonexistent")
