"""docker/triton-pytorch.toml, the pairs of Triton and PyTorch releases, and every place that uses its default pair:
the compose file (Triton's image, the export image's build arguments), the Dockerfile's export target, the
Kubernetes images, and the README's table. A TorchScript file must be exported by the PyTorch whose libtorch the
Triton image runs: these must never drift apart."""

from __future__ import annotations

import ast
import re
import subprocess
import tomllib
from typing import Any

import pytest

from tests.data import REPO
from tests.tools import tool
from tests.unit.deploy.manifests import KUBERNETES, container, named, render

TABLE = REPO / "docker" / "triton-pytorch.toml"
FIELDS = {"release", "triton_image", "triton_version", "pytorch_image", "torch", "python", "verified", "note"}


def table() -> dict[str, Any]:
    return tomllib.loads(TABLE.read_text(encoding="utf-8"))


def default() -> dict[str, Any]:
    pairs = table()
    found: list[dict[str, Any]] = [p for p in pairs["pair"] if p["release"] == pairs["default"]]
    assert len(found) == 1, f"default {pairs['default']} is not one row of {TABLE}"
    return found[0]


def yaml_file(path: str) -> Any:
    yaml = pytest.importorskip("yaml", reason="PyYAML is in the dev extra")
    return yaml.safe_load((REPO / path).read_text(encoding="utf-8"))


def test_each_pair_is_one_release_of_triton_and_of_pytorch() -> None:
    pairs = table()["pair"]
    releases = [p["release"] for p in pairs]
    assert releases == sorted(set(releases))
    for p in pairs:
        release = p["release"]
        assert set(p) == FIELDS and set(p["verified"]) <= FIELDS - {"verified", "note", "release"}
        assert re.fullmatch(r"\d\d\.\d\d", release)
        assert p["triton_image"] == f"nvcr.io/nvidia/tritonserver:{release}-py3"
        assert p["pytorch_image"] == f"nvcr.io/nvidia/pytorch:{release}-py3"  # Triton builds its libtorch from it
        assert re.fullmatch(r"2\.\d+\.\d+a0\+[0-9a-f]{7,12}", p["torch"]), p["torch"]
        assert re.fullmatch(r"2\.\d+\.\d+", p["triton_version"]) and p["python"] in ("3.10", "3.12")


def test_the_dockerfile_exports_on_the_default_pair() -> None:
    pair = default()
    text = (REPO / "docker" / "Dockerfile").read_text(encoding="utf-8")
    where = "docker/Dockerfile"
    assert f"\nARG PYTORCH_IMAGE={pair['pytorch_image']}\n" in text, where
    assert f"\nARG TORCH_VERSION={pair['torch']}\n" in text, where
    assert "\nFROM ${PYTORCH_IMAGE} AS export\n" in text
    export = text.split("AS export\n", 1)[1]
    # The image's torch is checked against the pair and kept: the package goes in without its dependencies.
    assert "torch.__version__" in export and "--no-deps" in export and "torch==" not in export


def test_compose_runs_the_default_pair() -> None:
    pair, compose = default(), yaml_file("docker/compose.yaml")["services"]
    where = "docker/compose.yaml"
    assert compose["triton"]["image"] == pair["triton_image"], where
    assert compose["export"]["build"]["args"] == {
        "PYTORCH_IMAGE": pair["pytorch_image"],
        "TORCH_VERSION": pair["torch"],
    }
    assert compose["export"]["image"] == f"motionlift-export:{export_tag()}", where


def test_kubernetes_runs_the_default_pair() -> None:
    pair = default()
    images = {i["name"]: i["newTag"] for i in yaml_file("deploy/kubernetes/base/kustomization.yaml")["images"]}
    where = str(KUBERNETES / "base" / "kustomization.yaml")
    assert images["motionlift-export"] == export_tag(), where
    assert images["motionlift-gateway"] == gateway_tag(), where
    triton = named(render("base"), "Deployment", "triton")
    assert container(triton, "triton")["image"] == pair["triton_image"], where
    assert container(triton, "export")["image"] == f"motionlift-export:{export_tag()}"
    # The same server flags as under compose (the repository path, strict readiness, the exit timeout).
    assert container(triton, "triton")["args"] == yaml_file("docker/compose.yaml")["services"]["triton"]["command"]


def test_the_readme_table_is_the_pair_table() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("**Export with Triton's own PyTorch.**", 1)[1].split("\n\n`docker/Dockerfile`", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| 2")]
    assert len(rows) == len(table()["pair"])
    for row, pair in zip(rows, table()["pair"], strict=True):
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[0].split()[0] == pair["release"] and cells[3] == pair["torch"]
        assert (
            f"`{pair['triton_image']}` ({pair['triton_version']}" in cells[1]
            and cells[2] == f"`{pair['pytorch_image']}`"
        )
        assert cells[4].split()[0] == pair["python"]
        assert ("unverified" in cells[1]) == ("triton_version" not in pair["verified"])
        assert ("unverified" in cells[4]) == ("python" not in pair["verified"])
    assert "(default)" in next(r for r in rows if r.startswith(f"| {table()['default']} "))


# What Python 3.11 added to the standard library that this code base could reach for (What's New in 3.11).
NEWER = {
    "tomllib": None,
    "typing": {"Self", "Never", "LiteralString", "NotRequired", "Required", "assert_never", "reveal_type"},
    "enum": {"StrEnum", "verify", "ReprEnum"},
    "asyncio": {"TaskGroup", "timeout", "Runner"},
    "datetime": {"UTC"},
    "hashlib": {"file_digest"},
    "contextlib": {"chdir"},
}


def test_the_export_path_runs_on_the_oldest_paired_python() -> None:
    """The 24.10 PyTorch image has Python 3.10, below the package's 3.11 (the export target installs with
    --ignore-requires-python): what `motionlift export` imports uses no newer syntax (ruff's version-aware parser)
    and none of 3.11's new standard-library names. The image build runs one export, the proof on a real host."""
    oldest = min(p["python"] for p in table()["pair"])
    files = sorted(export_closure())
    assert "service/model/export.py" in files and "service/config.py" in files
    cmd = [
        tool("ruff"),
        "check",
        "--no-cache",
        "--isolated",
        "--select",
        "E9",
        f"--target-version=py{oldest.replace('.', '')}",
    ]
    result = subprocess.run([*cmd, *files], cwd=REPO, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout
    for path in files:
        for node in ast.walk(ast.parse((REPO / path).read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                assert not {a.name for a in node.names} & {m for m, names in NEWER.items() if names is None}, path
            elif isinstance(node, ast.ImportFrom):
                assert not {a.name for a in node.names} & (NEWER.get(node.module or "") or set()), path
            elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
                assert node.attr not in (NEWER.get(node.value.id) or set()), f"{path}: {node.value.id}.{node.attr}"


def export_closure() -> set[str]:
    """The files of the service modules `motionlift export` imports, following imports (in functions too)."""
    seen: set[str] = set()
    todo = ["service.cli", "service.model.command"]
    while todo:
        module = todo.pop()
        path = REPO / (module.replace(".", "/") + ".py")
        if not path.is_file():
            path = REPO / module.replace(".", "/") / "__init__.py"
        relative = path.relative_to(REPO).as_posix()
        if relative in seen or not path.is_file():
            continue
        seen.add(relative)
        todo += [module.rsplit(".", n)[0] for n in range(1, module.count(".") + 1)]  # the packages it is in
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("service"):
                todo += [node.module or "", *(f"{node.module}.{a.name}" for a in node.names)]
            elif isinstance(node, ast.Import):
                todo += [a.name for a in node.names if a.name.startswith("service")]
    return seen


def export_tag() -> str:
    """The export image's tag: the package version and the NGC release it is built on."""
    return f"{package_version()}-ngc{default()['release']}"


def gateway_tag() -> str:
    return package_version()


def package_version() -> str:
    version: str = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
    return version
