"""Question 5: the image. Its size over the base, and `podman run` to exit on a no-op.

    python bench/image.py [--runs N]

The image is the one the container tests build (tests/containerimage.py: buildah, the repository's
Dockerfile on the locally built base). Size: `podman image inspect` of the image and of its base; the
job's own layers are the difference. Time: hyperfine, in one invocation, of `podman run` (as the tests
run it: read-only root, no capabilities, host network) of the job on an up-to-date database, and of the
same image running the floor (bench/floor.py mounted read-only) instead. Goal (issue 12): the job's own
layers <= 20 MB over the base.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from common import FLOOR, ROOT, cluster, database, hyperfine, load, ratio


def _size_mb(image: str) -> float:
    out = subprocess.run(["podman", "image", "inspect", image], capture_output=True, text=True, check=True)
    return round(float(json.loads(out.stdout)[0]["Size"]) / 1e6, 1)


def measure(runs: int, warmup: int) -> dict[str, Any]:
    import sys
    sys.path.insert(0, str(ROOT / "tests"))
    from containerimage import build_image, missing_tools, runtime_flags

    reason = missing_tools()
    if reason:
        return {"skipped": reason}
    image = build_image()
    sizes = {"image_mb": _size_mb(image.id), "base_mb": _size_mb(image.base)}
    sizes["job_layers_mb"] = round(sizes["image_mb"] - sizes["base_mb"], 1)
    with cluster() as pg:
        _, url = database(pg, "fixed")
        tmp = Path(tempfile.mkdtemp(prefix="bench-image-"))
        tmp.chmod(0o1777)
        base = ["podman", "run", "--rm", *runtime_flags(), "--network", "host", "--read-only",
                "--read-only-tmpfs=false", "--volume", f"{tmp}:/tmp", "--cap-drop", "ALL",
                "--security-opt", "no-new-privileges", "--env", f"DATABASE_URL={url}",
                "--env", "DB_INIT_LOG_FORMAT=json"]
        job = [*base, image.id]
        floor = [*base, "--volume", f"{FLOOR}:/floor.py:ro", "--entrypoint", "/opt/venv/bin/python",
                 image.id, "/floor.py"]
        subprocess.run(job, check=True, capture_output=True)
        before = load()
        times = hyperfine({"podman run job": shlex.join(job), "podman run floor": shlex.join(floor)},
                          runs=runs, warmup=warmup, env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
    return {"load_before": before, "load_after": load(), "runs": runs, "sizes": sizes, "results": times,
            "job_over_floor": ratio(times["podman run job"]["median_ms"],
                                    times["podman run floor"]["median_ms"])}


def report(r: dict[str, Any]) -> None:
    if "skipped" in r:
        print(f"image: skipped ({r['skipped']})")
        return
    s = r["sizes"]
    print(f"image ({r['load_before']}): {s['image_mb']} MB, base {s['base_mb']} MB,"
          f" job's own layers {s['job_layers_mb']} MB (goal <= 20 MB)")
    for name, t in r["results"].items():
        print(f"  {name:24} median {t['median_ms']:7.1f} ms  (min {t['min_ms']:7.1f})")
    print(f"  podman run: job / floor = {r['job_over_floor']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    r = measure(args.runs, args.warmup)
    report(r)
    if args.json:
        args.json.write_text(json.dumps(r, indent=2))


if __name__ == "__main__":
    main()
