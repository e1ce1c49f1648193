"""Every trainer's `smoke` run on the CPU and on a GPU, side by side: the GPU check to run when a session is lent
an accelerator (the default suite runs on the CPU only).

    python scripts/gpu_check_trainers.py                    # all trainers; cpu vs cuda
    python scripts/gpu_check_trainers.py stylegan pix2pix   # a subset

Each run is the real command line (`geneval train ... --budget smoke --device D`) in a fresh process. Per trainer
it prints: whether both finished, the record's `compute.device`, the wall time on each device, and the largest
relative difference between the two runs' first logged training losses (the random draws are made on the CPU in
every trainer, so the runs start from the same numbers and differ by float rounding only; a device bug — a tensor
left on the CPU, a draw made on the device — shows as a failure or a large difference). Exits 1 if any GPU run
failed or did not record a CUDA device.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TRAINERS = {
    "gan": ["gan", "--preset", "dcgan"],
    "stylegan": ["stylegan", "--preset", "stylegan-f"],
    "pix2pix": ["pix2pix"],
    "ddpm": ["ddpm"],
    "realnvp": ["realnvp", "--dataset", "mnist"],
    "pixelcnnpp": ["pixelcnnpp", "--dataset", "cifar10"],
    "vqvae": ["vqvae", "--dataset", "cifar10"],
}


def run(argv: list[str], device: str, out: Path) -> dict:
    command = [sys.executable, "-m", "geneval", "train", *argv, "--budget", "smoke", "--device", device,
               "--no-progress", "--out", str(out)]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode:
        return {"ok": False, "seconds": seconds, "error": (done.stderr.strip().splitlines() or ["?"])[-1]}
    record = json.loads((out / "record.json").read_text())
    first = next((e for e in map(json.loads, (out / "log.jsonl").read_text().splitlines())
                  if e.get("kind") == "train"), {})
    losses = {k: v for k, v in first.items() if isinstance(v, float) and k not in ("wall_time_s", "lr", "step")}
    return {"ok": True, "seconds": seconds, "device": record.get("compute", {}).get("device"), "losses": losses}


def main(names: list[str]) -> int:
    failed = False
    print(f"{'trainer':<11} {'cpu s':>7} {'gpu s':>7}  {'gpu device':<10} max rel. diff of first losses")
    with tempfile.TemporaryDirectory() as tmp:
        for name in names or list(TRAINERS):
            cpu = run(TRAINERS[name], "cpu", Path(tmp) / f"{name}-cpu")
            gpu = run(TRAINERS[name], "cuda", Path(tmp) / f"{name}-cuda")
            if not (cpu["ok"] and gpu["ok"]):
                failed |= not gpu["ok"]
                print(f"{name:<11} FAILED  cpu: {cpu.get('error', 'ok')}  gpu: {gpu.get('error', 'ok')}")
                continue
            shared = set(cpu["losses"]) & set(gpu["losses"])
            diff = max((abs(cpu["losses"][k] - gpu["losses"][k]) / max(abs(cpu["losses"][k]), 1e-12)
                        for k in shared), default=float("nan"))
            failed |= not str(gpu["device"]).startswith("cuda")
            print(f"{name:<11} {cpu['seconds']:7.1f} {gpu['seconds']:7.1f}  {gpu['device']!s:<10} {diff:.2e} "
                  f"({', '.join(sorted(shared)) or 'no losses logged'})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
