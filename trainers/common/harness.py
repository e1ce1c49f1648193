"""The run harness every trainer uses: run folder, exact resume, step budget, logging, validation, checkpoints.

    harness = Harness(out, config=config_dict(cfg), resume=resume, budget=Budget(steps=cfg.steps, ...))
    if harness.finished:                      # resumed a run that already wrote record.json
        return harness.run.read_record()
    trainer = MyTraining(cfg)                 # .step, .train_step() -> {name: float}, .state_dict(), .load_state_dict()
    outcome = harness.train(trainer, validation=Validation(score, every=..., metric="fid"), stop_after_steps=...)
    if outcome.stopped: ...
    harness.run.write_record({...})           # final evaluation and record stay with the family

What a trainer provides (duck-typed, see ``Trainable``): ``step`` (steps done; the harness saves and restores it),
``train_step()`` (one step, advancing ``step``; returns the losses to log), ``state_dict()`` /
``load_state_dict()`` (models, optimisers and whatever else the next step depends on, as tensors and plain data),
and optionally ``log_fields(means)`` (how a log line shows the mean losses of its window).

Each step, in this order (kept exactly as the trainers had it, so runs reproduce their committed records: a
checkpoint captures the state after that step's validation, and a resumed run continues from there):

    1. ``train_step()``
    2. every ``log_every`` steps (and the last): one ``{"kind": "train", "step", <mean losses>, "wall_time_s"}``
       line in ``log.jsonl``, the means taken over the steps since the previous line
    3. every ``validation.every`` steps (and the last): ``validation`` scores the model, logs a ``"val"`` line,
       keeps the best in ``best.pt`` and flags a collapse
    4. every ``checkpoint_every`` steps, every ``checkpoint_every_s`` seconds (5 minutes unless the budget says
       otherwise), and at the last step: ``checkpoint.pt``
    5. at ``stop_after_steps`` (before the budget's end): checkpoint and return ``Outcome(stopped=True)``

``checkpoint.pt`` (atomic; loaded with ``weights_only=True``) holds ``step``, ``wall_time_s`` (training time so
far: the stopwatch survives resumption), ``config``, ``rng`` (global torch and numpy RNG states as plain data),
``log_window`` (the partial logging window, so a resumed log line averages the same steps), ``validation`` (the
history: best, collapse, every evaluation), ``trainer`` (the trainer's ``state_dict()``) and the family's
``header`` keys (e.g. ``family`` for the ``geneval.likelihood`` entry points). Resuming restores all of it and
drops the log lines written after it.

Under ``torchrun`` (a ``geneval.distributed`` process group) rank 0 alone owns the run folder: it checks and
creates it, logs, validates, checkpoints; the other ranks train in step with it and receive its checkpoint
(broadcast) when resuming, so the run folder need not be shared between nodes. A tqdm progress bar goes to stderr (stdout is the CLI's, for results): on
when stderr is a terminal, or as ``progress=`` says.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from geneval import distributed
from trainers.common.checkpoint import load_checkpoint, save_checkpoint
from trainers.common.runs import RunDir, Stopwatch, truncate_log
from trainers.common.seeding import rng_state, set_rng_state

log = logging.getLogger(__name__)


class Trainable(Protocol):
    step: int

    def train_step(self) -> dict[str, float]: ...

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...


@dataclass(frozen=True)
class Budget:
    """How long a run trains and how often it logs and checkpoints (in steps; ``checkpoint_every_s`` in seconds)."""

    steps: int
    log_every: int
    checkpoint_every: int
    # also checkpoint when this much time passed since the last one: a run stopped from outside (a session's or a
    # cluster job's end) loses at most this much, whatever its step interval; None: steps only
    checkpoint_every_s: float | None = 300.0


class Validation:
    """Periodic validation with best-checkpoint selection.

    ``score()`` returns ``{name: value}`` for the model as it is now (values may be None). The evaluation is
    logged as ``{"kind": "val", "step", "wall_time_s", **values}``. With a ``metric``: a new best (lower, or
    higher with ``higher_is_better``) is kept in ``history["best"]`` and, when ``best_state`` is given, in
    ``best.pt`` (``{"step", **best_state(), "val": best}``); a later value worse than the best by more than
    ``collapse_margin`` (relative) is recorded once as ``history["collapse"]``.
    """

    def __init__(self, score: Callable[[], dict], *, every: int, metric: str | None = None,
                 higher_is_better: bool = False, best_state: Callable[[], dict] | None = None,
                 collapse_margin: float | None = None):
        self.score, self.every, self.metric = score, every, metric
        self.higher_is_better, self.best_state, self.collapse_margin = higher_is_better, best_state, collapse_margin
        self.history: dict = {"best": None, "collapse": None, "evals": []}

    def state_dict(self) -> dict:
        return self.history

    def load_state_dict(self, state: dict) -> None:
        self.history = state

    def __call__(self, run: RunDir, *, step: int, wall_time_s: float) -> dict:
        values = self.score()
        entry = {"kind": "val", "step": step, "wall_time_s": round(wall_time_s, 2), **values}
        value = entry.get(self.metric) if self.metric else None
        best = self.history["best"]
        if value is not None and (best is None or self._better(value, best[self.metric])):
            self.history["best"] = {"step": step, **{k: v for k, v in entry.items() if k not in ("kind", "wall_time_s")}}
            if self.best_state is not None:
                save_checkpoint(run.file("best.pt"), {"step": step, **self.best_state(), "val": self.history["best"]})
        elif value is not None and self.history["collapse"] is None and self._collapsed(value, best[self.metric]):
            self.history["collapse"] = {"step": step, self.metric: value, f"best_{self.metric}": best[self.metric],
                                        "best_step": best["step"]}
            log.warning("collapse at step %d: validation %s %.2f is worse than the best %.2f by more than %.0f%%",
                        step, self.metric, value, best[self.metric], 100 * self.collapse_margin)
        self.history["evals"].append(entry)
        run.log(entry)
        log.info("step %d: %s", step, {k: v for k, v in entry.items() if k != "kind"})
        return entry

    def _better(self, value: float, best: float) -> bool:
        return value > best if self.higher_is_better else value < best

    def _collapsed(self, value: float, best: float) -> bool:
        if self.collapse_margin is None:
            return False
        if self.higher_is_better:
            return value < best * (1.0 - self.collapse_margin)
        return value > best * (1.0 + self.collapse_margin)


@dataclass
class Outcome:
    stopped: bool  # True: stopped at stop_after_steps, before the budget's end
    step: int
    watch: Stopwatch  # training time so far; keeps running (the family times its evaluation with it)
    train_wall_time_s: float  # the stopwatch when training ended
    validation: dict = field(default_factory=dict)  # Validation.history, or {} without validation


class Harness:
    def __init__(self, out: str | os.PathLike, *, config: dict, resume: bool, budget: Budget,
                 header: dict | None = None, progress: bool | None = None, description: str = "train"):
        """Open the run folder (``config.json`` must match an existing run's; an existing checkpoint needs
        ``resume``). ``progress``: a tqdm bar on stderr; None = only when stderr is a terminal."""
        self.run = RunDir(out)
        self.config, self.budget, self.header = config, budget, dict(header or {})
        self.ctx = distributed.current()
        self.main = self.ctx is None or self.ctx.is_main
        started = distributed.agree(self.ctx, lambda: self.run.start(config, resume=resume) if self.main else None)
        self.resuming = distributed.broadcast_object(self.ctx, started)
        self.progress = (sys.stderr.isatty() if progress is None else progress) and self.main
        self.description = description

    @property
    def finished(self) -> bool:
        """A resumed run that already wrote its record: nothing to train or evaluate."""
        return self.resuming and distributed.broadcast_object(self.ctx, self.run.finished() if self.main else None)

    def train(self, trainer: Trainable, *, validation: Validation | None = None,
              stop_after_steps: int | None = None) -> Outcome:
        """Train ``trainer`` (restored from ``checkpoint.pt`` when resuming) to ``budget.steps``."""
        budget, run = self.budget, self.run
        sums: dict[str, float] = {}
        count, before = 0, 0.0
        main = self.main
        if self.resuming:
            state = distributed.broadcast_object(self.ctx, load_checkpoint(run.checkpoint) if main else None)
            trainer.load_state_dict(state["trainer"])
            trainer.step = state["step"]
            if validation is not None:
                validation.load_state_dict(state["validation"])
            sums, count = dict(state["log_window"]["sums"]), state["log_window"]["count"]
            before = state["wall_time_s"]
            set_rng_state(state["rng"])  # last: nothing after it may draw before the next step
            if main:
                truncate_log(run, after_step=trainer.step)
            log.info("resumed %s at step %d", run.checkpoint, trainer.step)
        watch = Stopwatch(before)
        last_save = time.monotonic()

        def checkpoint() -> None:
            nonlocal last_save
            if not main:
                return
            with distributed.single_process():
                trainer_state = trainer.state_dict()  # before the RNG state: it may compute (never draw) on its own
            save_checkpoint(run.checkpoint, {
                **self.header, "step": trainer.step, "wall_time_s": watch.elapsed(), "config": self.config,
                "rng": rng_state(), "log_window": {"sums": dict(sums), "count": count},
                "validation": validation.state_dict() if validation is not None else None, "trainer": trainer_state,
            })
            last_save = time.monotonic()

        from tqdm import tqdm

        with tqdm(total=budget.steps, initial=trainer.step, desc=self.description, unit="step", file=sys.stderr,
                  disable=not self.progress, dynamic_ncols=True, leave=False) as bar:
            while trainer.step < budget.steps:
                losses = trainer.train_step()
                for name, value in losses.items():
                    sums[name] = sums.get(name, 0.0) + value
                count += 1
                step = trainer.step
                bar.update(1)
                last = step == budget.steps
                if (step % budget.log_every == 0 or last) and main:
                    means = {name: total / count for name, total in sums.items()}
                    fields = trainer.log_fields(means) if hasattr(trainer, "log_fields") else means
                    run.log({"kind": "train", "step": step, **fields, "wall_time_s": round(watch.elapsed(), 2)})
                    bar.set_postfix({k: f"{v:.4g}" for k, v in means.items()}, refresh=False)
                    sums, count = {}, 0
                if validation is not None and (step % validation.every == 0 or last) and main:
                    with distributed.single_process():
                        validation(run, step=step, wall_time_s=watch.elapsed())
                overdue = budget.checkpoint_every_s is not None and time.monotonic() - last_save > budget.checkpoint_every_s
                if step % budget.checkpoint_every == 0 or last or overdue:
                    checkpoint()
                if stop_after_steps is not None and step >= stop_after_steps and not last:
                    checkpoint()
                    log.info("stopped after %d steps as asked; continue with resume", step)
                    return Outcome(True, step, watch, watch.elapsed(), validation.history if validation else {})
        return Outcome(False, trainer.step, watch, watch.elapsed(), validation.history if validation else {})
