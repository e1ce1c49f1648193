"""A class-conditional model's samples, one row per class — the figure of class-conditional PixelCNN papers
(van den Oord et al. 2016b, Fig. 3; Salimans et al. 2017 show PixelCNN++ CIFAR-10 samples the same way).

    python -m trainers.autoregressive.class_grid runs/pixelcnnpp-cifar10-cond --per-class 10 \\
        --out docs/autoregressive/pixelcnnpp-cifar10-conditional.png

Row c holds ``--per-class`` samples drawn with label c; sample i of the grid comes from its own generator
(``--seed``, i), as every sampler of this package draws. The class names, top to bottom, go to stdout.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from geneval.errors import GenevalInputError
from geneval.grid import save_grid
from trainers.common.checkpoint import load_checkpoint
from trainers.common.likelihood_training import TrainingData


def class_rows(run_dir, *, per_class: int, seed: int) -> tuple[torch.Tensor, list[str]]:
    """uint8 ``[classes · per_class, C, H, W]`` (class-major) and the class names of a conditional run."""
    from trainers.autoregressive.train import load_likelihood_model

    path = Path(run_dir) / "checkpoint.pt"
    if not path.is_file():
        raise GenevalInputError(f"{path} does not exist; expected a finished autoregressive run folder")
    state = load_checkpoint(path)
    adapter = load_likelihood_model(state)
    if not getattr(adapter.model, "conditional", False):
        raise GenevalInputError(f"{run_dir}: the model is not class-conditional (train it with --set conditional=true)")
    data = TrainingData(state["config"]["dataset"], seed=0, train_num=2)  # the dataset's classes and pixel convention only
    labels = torch.arange(data.num_classes).repeat_interleave(per_class)
    with torch.inference_mode():
        samples = adapter.model.sample(len(labels), seed=seed, first=0, labels=labels)
    return data.to_image(samples.cpu()), list(data.spec.classes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", help="a finished class-conditional run folder (checkpoint.pt)")
    parser.add_argument("--per-class", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True, help="the PNG to write")
    args = parser.parse_args()
    if args.per_class < 1:
        raise SystemExit(f"--per-class {args.per_class}: expected ≥ 1")
    try:
        images, classes = class_rows(args.run, per_class=args.per_class, seed=args.seed)
    except GenevalInputError as error:  # a wrong folder or an unconditional run: one line, not a traceback
        raise SystemExit(f"Error: {error}") from None
    save_grid(args.out, images, ncols=args.per_class, scale=2)
    print(json.dumps({"out": args.out, "rows": classes, "per_class": args.per_class, "seed": args.seed}))


if __name__ == "__main__":
    main()
