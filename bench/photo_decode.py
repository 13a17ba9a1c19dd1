"""Time and peak memory of taking in one photo, each case in a fresh process.

    .venv/bin/python bench/photo_decode.py
    .venv/bin/python bench/photo_decode.py --root /tmp/old   # another checkout's `bot` package, e.g.
    #   mkdir /tmp/old && git archive 82af1dc bot | tar -x -C /tmp/old

Cases: a decompression bomb (an 8000×10000 lossless WebP of a few KB), a 10-megapixel lossless
WebP (about the largest WebP accepted now), a 50-megapixel phone JPEG, and an ordinary
12-megapixel phone JPEG. For each, two paths run in a process of their own:
`EvidenceStore.store` (what a resident's photo goes through) and `prepare_image` (what a photo goes
through before it is uploaded to a Zalo OA reviewer). Reported: wall time, CPU time and the peak
resident memory of that process above what it used before the call (imports and the file bytes
already loaded). A refused photo counts as a result too: its time is what the refusal cost.
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import json, sys, tempfile, time
from pathlib import Path

def peak_kb():
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent across fork and exec.
    status = Path("/proc/self/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:")))

sys.path.insert(0, sys.argv[3])
data = Path(sys.argv[1]).read_bytes()
path = sys.argv[2]
if path == "store":
    from bot.storage.evidence import EvidenceStore
    run = lambda: EvidenceStore(Path(tempfile.mkdtemp()), 10 * 1024 * 1024).store(data)
else:
    from bot.zalo.oa import prepare_image
    run = lambda: prepare_image(data)
before = peak_kb()
cpu, wall = time.process_time(), time.perf_counter()
try:
    run()
    outcome = "accepted"
except Exception as exc:
    outcome = "refused: " + type(exc).__name__
wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
peak = peak_kb()
print(json.dumps({"wall": wall, "cpu": cpu, "peak_mb": (peak - before) / 1024, "outcome": outcome}))
"""


def webp(size: tuple[int, int]) -> bytes:
    """A lossless WebP of one colour: any canvas size in a few KB."""
    buffer = io.BytesIO()
    Image.new("RGB", size, (30, 90, 160)).save(buffer, "WEBP", lossless=True)
    return buffer.getvalue()


def phone_jpeg(size: tuple[int, int]) -> bytes:
    """A smooth picture (gradients) of the given size, as a phone camera would save it."""
    red = Image.linear_gradient("L").resize(size)
    green = Image.radial_gradient("L").resize(size)
    blue = red.transpose(Image.Transpose.ROTATE_180)
    buffer = io.BytesIO()
    Image.merge("RGB", (red, green, blue)).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def measure(data: bytes, path: str, root: Path) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".img") as handle:
        handle.write(data)
        handle.flush()
        out = subprocess.run(
            [sys.executable, "-c", CHILD, handle.name, path, str(root)],
            capture_output=True,
            text=True,
            check=True,
            timeout=300,
        )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", type=Path, default=ROOT, help="folder holding the bot package to measure")
    root = parser.parse_args().root.resolve()
    cases = [
        ("8000×10000 lossless WebP", webp((8000, 10000))),
        ("3200×3200 lossless WebP", webp((3200, 3200))),
        ("8160×6120 JPEG (50 MP)", phone_jpeg((8160, 6120))),
        ("4000×3000 JPEG (12 MP)", phone_jpeg((4000, 3000))),
    ]
    print("| image | file | path | outcome | wall s | CPU s | peak RSS above start, MB |")
    print("|---|---|---|---|---|---|---|")
    for name, data in cases:
        for path in ("store", "prepare_image"):
            result = measure(data, path, root)
            print(
                f"| {name} | {len(data) // 1024} KB | {path} | {result['outcome']} | {result['wall']:.2f} | "
                f"{result['cpu']:.2f} | {result['peak_mb']:.0f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
