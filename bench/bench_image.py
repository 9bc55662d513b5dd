"""Benchmarks: what the runner image's layers, its warm build and the scheduled-slot check cost.

Each figure is shown against a baseline run in the same process, so the ratios mean
something on any machine:

* packing a layer: ``dirt.sandbox.oci.layer_from_tree`` (sorted entries, fixed times and
  owners, hashes of the tar and of the gzip, streamed to the cache) over a synthetic tree
  vs the standard library's ``tarfile`` writing the same tree through gzip at the same
  level (what any image tool pays); and the peak memory traced while packing vs the tree's
  size (it streams: the ratio stays far below 1);
* a warm build: ``build_runner_image`` with every layer in the cache (what a second
  ``dirt image build`` costs) vs copying the same layer blobs into one file (the floor of
  writing the archive). Skipped, and said so, when the layers are not cached yet
  (``make image`` builds them; root is needed once, for debootstrap);
* the slot check: ``dirt.gameday.schedule.due`` (is a scheduler's start a real slot of the
  quarterly ``2#1`` cron?) for N moments vs ``scheduled_start`` alone (the latest cron
  time, what ``--trigger schedule`` asked before).

``--quick`` runs a tiny version (for the unit test): same lines, small sizes, no image build.

Run: make bench   (or .venv/bin/python bench/bench_image.py [--quick])
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import shutil
import sys
import tarfile
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from measure import best, traced_peak

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

QUARTERLY = {"cron": "0 10 * 1,4,7,10 2#1", "timezone": "Europe/Berlin", "jitter": "10m"}
START = datetime(2027, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True)
class Sizes:
    files: int  # in the synthetic tree
    file_bytes: int  # the largest file's size; files range from 1/64 of it up
    moments: int  # asked of due()
    best_of: int


NORMAL = Sizes(files=1_500, file_bytes=256_000, moments=2_000, best_of=3)
QUICK = Sizes(files=40, file_bytes=8_000, moments=50, best_of=1)


def synthetic_tree(root: Path, sizes: Sizes, seed: int = 7) -> int:
    """Files of mixed sizes in nested folders, half text-like (compressible), half random; return the bytes."""
    rng = random.Random(seed)
    total = 0
    for i in range(sizes.files):
        folder = root / f"pkg{i % 17}" / f"sub{i % 5}"
        folder.mkdir(parents=True, exist_ok=True)
        size = rng.randint(sizes.file_bytes // 64, sizes.file_bytes)
        text = b"def f():\n    return 42\n"
        data = (text * (size // len(text) + 1))[:size] if i % 2 else rng.randbytes(size)
        (folder / f"m{i}.py").write_bytes(data)
        total += size
    return total


def tarfile_baseline(root: Path, out: Path, level: int) -> None:
    """The same tree through the standard library: tarfile into gzip, in walk order."""
    with gzip.open(out, "wb", compresslevel=level) as gz, tarfile.open(fileobj=gz, mode="w",
                                                                       format=tarfile.PAX_FORMAT) as tar:
        tar.add(root, arcname=".")


def copy_floor(blobs: Sequence[Path], out: Path) -> None:
    """Writing the layers' bytes into one file, nothing else: the floor of writing an image archive."""
    with out.open("wb") as dest:
        for blob in blobs:
            with blob.open("rb") as src:
                shutil.copyfileobj(src, dest, 1 << 20)


def blobs_of(cache: Path, digests: Sequence[str]) -> list[Path]:
    """The cached blobs of these layer digests, in order (each blob's JSON sidecar names its digest)."""
    by_digest = {json.loads(sidecar.read_text()).get("digest"): sidecar.with_name(sidecar.stem + ".tar.gz")
                 for sidecar in cache.glob("*.json")}
    return [by_digest[digest] for digest in digests]


def row(label: str, value: str, per: str, ratio: float | None, versus: str = "") -> str:
    shown = f"{ratio:.2f}x {versus}" if ratio is not None else ""
    return f"{label:56} {value:>12} {per:>14}  {shown}"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (for the unit test)")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else NORMAL

    from dirt.gameday.model import Schedule
    from dirt.gameday.schedule import due, scheduled_start
    from dirt.sandbox import oci, runner_image

    with tempfile.TemporaryDirectory(prefix="dirt-bench-image-") as scratch_name:
        scratch = Path(scratch_name)
        tree = scratch / "tree"
        total = synthetic_tree(tree, sizes)

        runs = iter(range(1_000_000))

        def pack() -> object:
            return oci.layer_from_tree(tree, scratch / "cache", key=f"bench-{next(runs)}")

        layer_time = best(pack, sizes.best_of)
        base_time = best(lambda: tarfile_baseline(tree, scratch / "baseline.tar.gz", oci.TREE_COMPRESSLEVEL),
                         sizes.best_of)
        peak = traced_peak(pack)
        print(f"{f'layer: {sizes.files:,} files, {total / 1e6:.1f} MB':56} {'seconds':>12} {'MB/s':>14}")
        print(row("  oci.layer_from_tree (reproducible, hashed, cached)", f"{layer_time:.3f}",
                  f"{total / 1e6 / layer_time:.1f}", layer_time / base_time, "tarfile + gzip"))
        print(row("  tarfile + gzip, same level (baseline)", f"{base_time:.3f}", f"{total / 1e6 / base_time:.1f}",
                  None))
        print(row("  peak memory while packing (tracemalloc)", f"{peak / 1e6:.2f} MB", "", peak / total,
                  "of the tree's size"))

        cache = runner_image.image_cache() / "layers"
        archive = runner_image.image_cache() / f"dirt-{runner_image.dirt.__version__}.oci.tar"
        if args.quick:
            print("warm image build: skipped with --quick (it builds a wheel and reads ~140 MB of cached layers)")
        elif archive.is_file() and os.geteuid() == 0:
            wheel = runner_image.dirt_wheel_for_image(scratch / "wheel", log=lambda m: None)
            # the first build makes the dirt layer of this wheel; the timed ones find every layer cached
            runner_image.build_runner_image(wheel=wheel, output=scratch / "warm-up.oci.tar", log=lambda m: None)
            built: list[runner_image.RunnerImage] = []

            def warm() -> None:
                built.append(runner_image.build_runner_image(wheel=wheel, output=scratch / "warm.oci.tar",
                                                             log=lambda m: None))

            warm_time = best(warm, sizes.best_of)
            image = built[-1]
            blobs = blobs_of(cache, [layer.digest for layer in image.layers])
            floor_time = best(lambda: copy_floor(blobs, scratch / "floor.bin"), sizes.best_of)
            cached = sum(layer.cached for layer in image.layers)
            print(f"{f'warm image build: {cached} of {len(blobs)} layers cached, {image.size / 1e6:.1f} MB':56} "
                  f"{'seconds':>12}")
            print(row("  build_runner_image (every layer cached)", f"{warm_time:.2f}", "", warm_time / floor_time,
                      "copying the blobs"))
            print(row("  copying the layer blobs into one file (floor)", f"{floor_time:.2f}", "", None))
        else:
            print("warm image build: skipped (no cached runner image: run `make image` first, as root)")

    schedule = Schedule.model_validate(QUARTERLY)
    step = timedelta(days=730) / sizes.moments
    moments = [START + step * i for i in range(sizes.moments)]
    due_time = best(lambda: [due(schedule, m, "quarterly-dirt") for m in moments], sizes.best_of)
    latest_time = best(lambda: [scheduled_start(schedule, m, "quarterly-dirt") for m in moments], sizes.best_of)
    found = sum(due(schedule, m, "quarterly-dirt") is not None for m in moments)
    print(f"{f'slot check: {sizes.moments:,} moments over two years ({found} due)':56} {'seconds':>12} {'µs each':>14}")
    print(row("  due (a real slot of 2#1, within jitter and deadline?)", f"{due_time:.3f}",
              f"{due_time / sizes.moments * 1e6:.0f}", due_time / latest_time, "scheduled_start"))
    print(row("  scheduled_start (the latest cron time; baseline)", f"{latest_time:.3f}",
              f"{latest_time / sizes.moments * 1e6:.0f}", None))
    print(f"(best of {sizes.best_of}; gzip level {oci.TREE_COMPRESSLEVEL})")


if __name__ == "__main__":
    main()
