"""`buf breaking` against the released API (protos/released/) guards every change; it fails on a break."""

import shutil
import subprocess
import sys
from pathlib import Path

from cli import gen

BUF = str(Path(sys.executable).parent / "buf")


def breaking(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [BUF, "breaking", "protos", "--against", gen.RELEASED], cwd=root, capture_output=True, text=True, timeout=60
    )


def test_the_tree_is_compatible_with_the_released_api() -> None:
    assert breaking(gen.ROOT).returncode == 0


def test_renaming_a_field_is_caught(tmp_path: Path) -> None:
    for part in ("protos", "third_party"):
        shutil.copytree(gen.ROOT / part, tmp_path / part, ignore=shutil.ignore_patterns("*.py", "*.pyi"))
    shutil.copy(gen.ROOT / "buf.yaml", tmp_path / "buf.yaml")
    proto = tmp_path / "protos/aos/account/v1/account_service.proto"
    proto.write_text(proto.read_text().replace("  string project_id = 1;", "  string project_ref = 1;", 1))
    result = breaking(tmp_path)
    assert result.returncode != 0 and "project_ref" in result.stdout
