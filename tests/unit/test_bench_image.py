"""bench/bench_image.py: its baselines are what their labels say, and a tiny run prints every figure."""

from __future__ import annotations

import gzip
import re
import subprocess
import sys
import tarfile
from pathlib import Path

from tests.conftest import REPO, load_script

SCRIPT = REPO / "bench" / "bench_image.py"
bench = load_script(SCRIPT, "bench_image")


def test_the_tarfile_baseline_packs_the_same_files_as_the_layer(tmp_path: Path) -> None:
    from dirt.sandbox import oci

    tree = tmp_path / "tree"
    total = bench.synthetic_tree(tree, bench.QUICK)
    assert total == sum(p.stat().st_size for p in tree.rglob("*") if p.is_file())
    bench.tarfile_baseline(tree, tmp_path / "base.tar.gz", 6)
    with tarfile.open(tmp_path / "base.tar.gz") as tar:
        baseline = {m.name.removeprefix("./") for m in tar.getmembers() if m.isfile()}
    layer = oci.layer_from_tree(tree, tmp_path / "cache", key="same")
    with gzip.open(layer.path) as gz, tarfile.open(fileobj=gz) as tar:
        packed = {m.name.removeprefix("./") for m in tar.getmembers() if m.isfile()}
    assert packed == baseline and len(packed) == bench.QUICK.files


def test_the_copy_floor_writes_every_blob_once(tmp_path: Path) -> None:
    blobs = []
    for i, data in enumerate((b"a" * 10, b"b" * 20)):
        blobs.append(tmp_path / f"{i}.tar.gz")
        blobs[-1].write_bytes(data)
    bench.copy_floor(blobs, tmp_path / "out")
    assert (tmp_path / "out").read_bytes() == b"a" * 10 + b"b" * 20


def test_a_quick_run_prints_every_figure() -> None:
    done = subprocess.run([sys.executable, str(SCRIPT), "--quick"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    for label in ("oci.layer_from_tree", "tarfile + gzip, same level (baseline)", "peak memory while packing",
                  "warm image build: skipped with --quick", "due (a real slot of 2#1", "scheduled_start"):
        assert label in done.stdout, label
    assert re.search(r"slot check: 50 moments over two years \(\d+ due\)", done.stdout)
