"""Pointers in the prose stay true: every dotted ``affectflow.…`` name the docs, configs and profiles give
resolves, and every rule the SLURM profile and docs/cluster.md name exists (their local-rule lists are the
rules marked ``localrule: True``). Fast: files are read and modules imported, no workflow runs."""

from __future__ import annotations

import importlib
import re
from collections import defaultdict
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]

# ------------------------------------------------------------------ dotted names

#: ``affectflow.x.y``, not part of a path (``envs/affectflow.yaml``) or of a longer word (``affectflow.egg-info``)
DOTTED = re.compile(r"(?<![\w/.-])affectflow(?:\.[A-Za-z_]\w*)+(?![\w/-])")


def _prose_files() -> list[Path]:
    files = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), REPO / "config.yaml"]
    for folder in ("configs", "profiles"):
        files += sorted(p for p in (REPO / folder).rglob("*") if p.is_file())
    return files


def _dotted_names() -> dict[str, list[str]]:
    """Every dotted name -> where it is written (``file:line``)."""
    where: dict[str, list[str]] = defaultdict(list)
    for path in _prose_files():
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for m in DOTTED.finditer(line):
                where[m.group(0)].append(f"{path.relative_to(REPO)}:{n}")
    return dict(sorted(where.items()))


def resolve(name: str) -> str | None:
    """Why ``name`` does not resolve (None when it does): the longest importable module prefix, then
    attributes."""
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        module = ".".join(parts[:i])
        try:
            obj = importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name is not None and (module == e.name or module.startswith(e.name + ".")):
                continue  # no such module: try the prefix
            return f"importing {module} fails: {e}"
        except Exception as e:  # noqa: BLE001 - any import failure is the finding
            return f"importing {module} fails: {type(e).__name__}: {e}"
        for attr in parts[i:]:
            if not hasattr(obj, attr):
                return f"{module} has no attribute {'.'.join(parts[i:])!r}"
            obj = getattr(obj, attr)
        return None
    return "no such module"


NAMES = _dotted_names()
#: dotted names the prose gives as data, not as pointers -> the constant that holds that very name
#: (checked, so an entry cannot outlive the constant)
NOT_POINTERS = {
    # the module name the ddamfn stand-in's TorchScript archive records (docs/models.md), kept for its hash
    "affectflow.models.ddamfn": "affectflow.models.standins.face.TORCHSCRIPT_ARCHIVE_MODULE",
}


def test_the_prose_names_modules() -> None:
    assert len(NAMES) > 50  # the scan finds the docs' names (a broken pattern would find none)


@pytest.mark.parametrize("name", list(NAMES))
def test_every_dotted_name_resolves(name: str) -> None:
    if name in NOT_POINTERS:
        module, _, constant = NOT_POINTERS[name].rpartition(".")
        assert getattr(importlib.import_module(module), constant) == name, NOT_POINTERS[name]
        return
    why = resolve(name)
    assert why is None, f"{name} (written at {', '.join(NAMES[name])}): {why}"


def test_resolve_tells_a_stale_name() -> None:
    assert resolve("affectflow.core.files.atomic_folder") is None
    assert resolve("affectflow.core.files") is None
    assert "no attribute" in resolve("affectflow.core.files.no_such_helper")
    assert "no attribute" in resolve("affectflow.learn.stage")  # the stale pointer config.yaml had
    assert [m.group(0) for m in DOTTED.finditer("envs/affectflow.yaml, affectflow.egg-info, `affectflow.io.store`.")] \
        == ["affectflow.io.store"]


# ------------------------------------------------------------------ rule names

RULE = re.compile(r"^(?P<indent>[ \t]*)rule(?:[ \t]+(?P<name>\w+))?[ \t]*:", re.M)
NAME = re.compile(r"^\s*name:\s*(?:\n\s*)?f?[\"']([^\"']+)[\"']", re.M)


def _template(name: str) -> str:
    """A rule name built per item (``f"submit_{_task}"``) as the docs write it (``submit_<task>``)."""
    return re.sub(r"\{_*(\w+)\}", r"<\1>", name)


def workflow_rules() -> dict[str, bool]:
    """Every rule of the workflow (``Snakefile`` and ``workflow/rules/*.smk``) -> whether it is a local rule."""
    rules: dict[str, bool] = {}
    for path in [REPO / "Snakefile", *sorted((REPO / "workflow" / "rules").glob("*.smk"))]:
        text = path.read_text(encoding="utf-8")
        starts = list(RULE.finditer(text))
        for k, m in enumerate(starts):
            body = text[m.end(): starts[k + 1].start() if k + 1 < len(starts) else len(text)]
            # the block ends at the first non-blank line indented no deeper than `rule`
            end = re.search(rf"^(?!{m.group('indent')}[ \t])(?=[ \t]*\S)", body, re.M)
            block = body[:end.start()] if end else body
            name = m.group("name") or _template(NAME.search(block).group(1))
            rules[name] = bool(re.search(r"^\s*localrule:\s*True\b", block, re.M))
    return rules


RULES = workflow_rules()
LOCAL = {name for name, local in RULES.items() if local}
PROFILE = REPO / "profiles" / "slurm" / "config.yaml"
CLUSTER_DOC = REPO / "docs" / "cluster.md"


def test_the_rule_scan_finds_the_workflow() -> None:
    assert {"all", "media", "faces", "face_features", "fetch_model", "units", "submit_<task>"} <= set(RULES)
    assert {"units", "fetch_model", "submit_<task>"} <= LOCAL and "media" not in LOCAL


def _command_line_rules(text: str) -> set[str]:
    """Rules named in ``--set-resources RULE:…`` and ``--groups RULE=GROUP …`` examples."""
    names = set(re.findall(r"--set-resources\s+(\w+):", text))
    for groups in re.findall(r"--groups((?:\s+\w+=\w+)+)", text):
        names |= {g.split("=")[0] for g in groups.split()}
    return names


def _comment_paragraph(text: str, marker: str) -> str:
    """The block of consecutive comment lines that contains ``marker``."""
    block: list[str] = []
    for line in text.splitlines():
        if line.lstrip().startswith("#"):
            block.append(line)
            continue
        if any(marker in b for b in block):
            break
        block = []
    assert any(marker in b for b in block), f"no comment with {marker!r}"
    return "\n".join(block)


def test_every_rule_the_slurm_profiles_name_exists() -> None:
    for path in sorted(p for d in ("slurm", "slurm-gpu") for p in (REPO / "profiles" / d).rglob("*")):
        if not path.is_file():
            continue
        text = path.read_text(encoding="utf-8")
        named = _command_line_rules(text)
        if path.name.endswith((".yaml", ".yml")):
            conf = yaml.safe_load(text) or {}
            named |= set(conf.get("set-resources") or {}) | set(conf.get("set-threads") or {})
        assert named - set(RULES) == set(), f"{path.relative_to(REPO)} names rules that do not exist"


def test_the_gpu_profile_puts_exactly_the_gpu_stages_on_gpus() -> None:
    """Faces (the detector), face, audio and text features and transcripts ask for a GPU; nothing else does."""
    conf = yaml.safe_load((REPO / "profiles" / "slurm-gpu" / "config.yaml").read_text(encoding="utf-8"))
    gpu = {rule for rule, res in conf["set-resources"].items() if res.get("gpu")}
    assert gpu == {"faces", "face_features", "audio_features", "transcripts", "text_features"}
    assert "faces" in conf["set-threads"] and "gpu" not in conf["default-resources"]


def test_the_slurm_profile_lists_the_local_rules() -> None:
    comment = _comment_paragraph(PROFILE.read_text(encoding="utf-8"), "localrule: True")
    listed = {n for n in re.findall(r"`([^`]+)`", comment) if ":" not in n}
    assert listed == LOCAL


def test_docs_cluster_lists_the_local_rules_and_names_real_rules() -> None:
    lines = CLUSTER_DOC.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if "(`localrule: True`)" in line)
    listed, seen_list = set(), False
    for line in lines[start + 1:]:
        if line.startswith("- "):
            seen_list = True
            listed.add(re.match(r"- `([^`]+)`", line).group(1))
        elif seen_list and line.strip() and not line.startswith(" "):
            break
    assert listed == LOCAL
    assert _command_line_rules("\n".join(lines)) - set(RULES) == set()
