"""Leaderboards: the smoke spec end to end through the real CLI, resumption after a kill, byte-for-byte rebuilds
of every committed table, and spec errors that fail before training, naming the line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GENEVAL = str(Path(sys.executable).parent / "geneval")
SMOKE = ROOT / "leaderboards" / "specs" / "smoke.toml"
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
TABLE_FILES = ("{}.md", "{}.csv", "{}.html", "{}_metrics.png")


def _run_args(tmp: Path) -> list[str]:
    return [GENEVAL, "leaderboard", "run", str(SMOKE), "--runs-dir", str(tmp / "runs"), "--records-dir",
            str(tmp / "records"), "--tables-dir", str(tmp / "tables")]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("lb_full")
    done = subprocess.run(_run_args(tmp), capture_output=True, text=True, env=ENV, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return tmp


def test_smoke_spec_runs_end_to_end(uninterrupted):
    lines = [json.loads(l) for l in (uninterrupted / "records" / "smoke.jsonl").read_text().splitlines()]
    assert sorted((l["row"], l["seed"]) for l in lines) == [("+ SN in D", 0), ("+ SN in D", 1), ("DCGAN", 0),
                                                           ("DCGAN", 1)]
    for line in lines:  # each record carries what its row shows and the protocol
        assert line["metrics"]["final"]["fid"]["value"] > 0 and "best" in line["metrics"]
        assert line["switches"]["sn_d"] is (line["row"] == "+ SN in D")
        assert line["evaluation"]["extractor"] == "pixels" and line["evaluation"]["num_samples"] == 64
        assert line["params_m"]["generator"] > 0 and line["steps"] == 4
    table = (uninterrupted / "tables" / "smoke.md").read_text()
    assert "| DCGAN (baseline) |" in table and "2/2" in table and "%)" in table  # Δ% vs baseline
    assert "extractor `pixels`" in table and "## Findings of the papers at this scale" in table
    html = (uninterrupted / "tables" / "smoke.html").read_text()
    assert "sortBy(this)" in html and "<script" in html and "http" not in html  # no CDN
    for name in TABLE_FILES + ("{}_tradeoff.png",):
        assert (uninterrupted / "tables" / name.format("smoke")).stat().st_size > 0
    index = (uninterrupted / "tables" / "index.html").read_text()  # the page over the folder's tables
    assert '<a href="smoke.html">' in index and "4 of 4 (row, seed) recorded" in index


def test_reproduce_retrains_one_row_and_compares_with_the_stated_spread(uninterrupted, tmp_path):
    args = [GENEVAL, "leaderboard", "reproduce", str(SMOKE), "--row", "+ SN in D", "--seed", "1",
            "--records-dir", str(uninterrupted / "records"), "--out", str(tmp_path / "again"), "--json"]
    done = subprocess.run(args, capture_output=True, text=True, env=ENV, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["holds"] is True and (tmp_path / "again" / "record.json").is_file()
    assert {(m["metric"], m["which"]) for m in report["metrics"]} == {
        (m, w) for m in ("fid", "kid") for w in ("final", "best")}
    for m in report["metrics"]:  # same seed, one thread: training and evaluation are deterministic on CPU
        assert m["difference"] == 0.0 and m["stated"] > 0
    # the records are untouched, and a folder that already holds a run is refused
    assert len((uninterrupted / "records" / "smoke.jsonl").read_text().splitlines()) == 4
    again = subprocess.run(args, capture_output=True, text=True, env=ENV, timeout=300)
    assert again.returncode == 2 and "already holds a run" in again.stderr.strip().splitlines()[-1]
    missing = subprocess.run(args[:4] + ["--row", "nope"] + args[6:], capture_output=True, text=True, env=ENV)
    assert missing.returncode == 2 and "no row 'nope'; rows: 'DCGAN', '+ SN in D'" in missing.stderr


def test_run_resumes_after_kill_and_gives_the_same_table(uninterrupted, tmp_path):
    records = tmp_path / "records" / "smoke.jsonl"
    process = subprocess.Popen(_run_args(tmp_path), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV,
                               start_new_session=True)
    try:
        deadline = time.time() + 300
        while time.time() < deadline and process.poll() is None:
            if records.is_file() and records.read_text().count("\n") >= 1:
                break
            time.sleep(0.05)
        assert process.poll() is None, "the run finished before it could be interrupted"
        os.killpg(process.pid, signal.SIGKILL)
    finally:
        process.wait()
    first = records.read_text()
    recorded = first.count("\n")
    assert 1 <= recorded < 4
    again = subprocess.run(_run_args(tmp_path), capture_output=True, text=True, env=ENV, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"{recorded} of 4 (row, seed) already recorded" in again.stderr
    assert records.read_text().startswith(first)  # finished runs were skipped, not re-recorded
    assert len(records.read_text().splitlines()) == 4
    for name in ("{}.md", "{}.csv"):  # the footer names the git commit, which others may move meanwhile
        assert _without_commit((tmp_path / "tables" / name.format("smoke")).read_text()) == \
            _without_commit((uninterrupted / "tables" / name.format("smoke")).read_text())


def _without_commit(text: str) -> str:
    import re

    return re.sub(r"commits? [0-9a-f, ]+\.", "commit <sha>.", text)


def _committed_specs() -> list[Path]:
    specs = sorted((ROOT / "leaderboards" / "specs").glob("*.toml"))
    return [s for s in specs if (ROOT / "leaderboards" / "records" / f"{_table_name(s)}.jsonl").is_file()]


def _table_name(spec: Path) -> str:
    import tomllib

    return tomllib.loads(spec.read_text())["table"].get("name", spec.stem)


@pytest.mark.parametrize("spec", _committed_specs(), ids=lambda p: p.stem)
def test_build_regenerates_committed_tables_byte_for_byte(spec, tmp_path):
    from geneval.leaderboard.build import build

    name = _table_name(spec)
    written = build(spec, tables_dir=tmp_path)
    for pattern in TABLE_FILES:
        committed = ROOT / "leaderboards" / "tables" / pattern.format(name)
        assert committed.is_file(), f"{committed} is not committed"
        assert written[pattern.format(name)].read_bytes() == committed.read_bytes(), \
            f"{committed.name} differs from a rebuild: run `geneval leaderboard build {spec.relative_to(ROOT)}`"


def test_index_page_lists_every_committed_table_byte_for_byte(tmp_path):
    from geneval.leaderboard.index import write_index

    written = write_index(ROOT / "leaderboards" / "specs", tables_dir=tmp_path)
    committed = ROOT / "leaderboards" / "tables" / "index.html"
    assert written.read_bytes() == committed.read_bytes(), \
        "index.html differs from a rebuild: run `geneval leaderboard build` on any spec"
    text = committed.read_text()
    for spec in _committed_specs():
        assert f'<a href="{_table_name(spec)}.html">' in text and f'src="{_table_name(spec)}_metrics.png"' in text


# ------------------------------------------------------------------------------------------- spec errors

def _bad_spec(tmp_path: Path, old: str, new: str) -> Path:
    text = SMOKE.read_text()
    assert old in text
    (tmp_path / "specs").mkdir(exist_ok=True)
    path = tmp_path / "specs" / "bad.toml"
    path.write_text(text.replace(old, new, 1))
    return path


def _line_of(path: Path, needle: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


def test_unknown_row_switch_fails_before_training_naming_the_line(tmp_path):
    path = _bad_spec(tmp_path, "sn_d = true", "sn_d = true\nshared = true")
    done = subprocess.run([GENEVAL, "leaderboard", "run", str(path), "--runs-dir", str(tmp_path / "runs"),
                           "--records-dir", str(tmp_path / "records")], capture_output=True, text=True, env=ENV,
                          timeout=300)
    assert done.returncode == 2
    error = done.stderr.strip().splitlines()[-1]
    assert error.startswith(f"Error: {path}:{_line_of(path, 'shared = true')}: ")
    assert "no switch 'shared'" in error and "shared_embedding" in error  # lists the known switches
    assert not (tmp_path / "runs").exists() and not (tmp_path / "records").exists()


@pytest.mark.parametrize("old,new,needle,message", [
    ("budget = \"smoke\"", "budget = \"smoke\"\nbudgets = 3", "budgets = 3", "unknown key 'budgets' in [table]"),
    ("metrics = [\"fid\", \"kid\"]\n\n[columns]", "metrics = [\"fid\", \"kid\"]\nnum_sample = 5\n\n[columns]",
     "num_sample = 5", "unknown key 'num_sample' in [evaluation]"),
    ("baseline = true", "", "[[rows]]", "no row is marked baseline"),
    ("[[findings]]", "[extra]\n[[findings]]", "[extra]", "unknown section or key 'extra'"),
    ("sn_d = true", "sn_d = 3", "sn_d = 3", "is not a boolean"),  # a mistyped value, via the trainer's validate
    # metric names are the registry's: a hyphenated spelling would otherwise be skipped silently by the trainer
    ("metrics = [\"fid\", \"kid\"]\n\n[columns]", "metrics = [\"fid\", \"intra-fid\"]\n\n[columns]",
     "metrics = [\"fid\", \"intra-fid\"]", "metric 'intra-fid' is unknown (did you mean 'intra_fid'?)"),
    ("tradeoff = [\"fid\", \"kid\"]", "tradeoff = [\"fid\", \"bpd\"]", "tradeoff = [", "[columns] tradeoff: metric 'bpd'"),
    ("metric = \"fid\"\n", "metric = \"fid\"\nexpect = \"lower\"\n", "expect = ", "expected one of 'better', 'worse'"),
    ("sn_d = true", "sn_d = true\nseeds = [1, 1]", "seeds = [1, 1]", "seeds = [1, 1]: expected distinct integers"),
    # a shown key no line can carry (misspelt, or a record value the family does not copy) would be "–" forever
    ('show = ["batch_size",', 'show = ["batch_sise",', "show = [", "show: 'batch_sise' is not a key the lines"),
])
def test_spec_errors_name_the_line(tmp_path, old, new, needle, message):
    from geneval.errors import GenevalInputError
    from geneval.leaderboard.spec import load_spec

    path = _bad_spec(tmp_path, old, new)
    with pytest.raises(GenevalInputError) as error:
        load_spec(path)
    assert str(error.value).startswith(f"{path}:{_line_of(path, needle)}: "), str(error.value)
    assert message in str(error.value)


def test_a_finding_cannot_rank_rows_by_a_metric_with_no_better_side(tmp_path):
    """Rarity rises for rarer samples and for noisy or blurred ones alike: a table may show it, with no arrow, but a
    finding that calls one row better by it is refused at load, naming the line."""
    from geneval.errors import GenevalInputError
    from geneval.leaderboard.spec import load_spec

    path = _bad_spec(tmp_path, "metrics = [\"fid\", \"kid\"]\nwhich", "metrics = [\"fid\", \"kid\", \"rarity\"]\nwhich")
    assert load_spec(path).columns["metrics"] == ["fid", "kid", "rarity"]  # shown: fine
    path.write_text(path.read_text().replace("metric = \"fid\"\n", "metric = \"rarity\"\n", 1))
    with pytest.raises(GenevalInputError) as error:
        load_spec(path)
    line = _line_of(path, 'metric = "rarity"')
    assert str(error.value).startswith(f"{path}:{line}: ")
    assert "'rarity' has no better side" in str(error.value)


# ----------------------------------------------------------------------------------- imports and verdicts

def _smoke_copy(tmp_path: Path, extra_table_keys: str = "") -> Path:
    """The smoke spec in ``tmp_path/leaderboards/specs`` (its imports resolve under ``tmp_path/leaderboards``)."""
    specs = tmp_path / "leaderboards" / "specs"
    specs.mkdir(parents=True)
    text = SMOKE.read_text().replace("seeds = [0, 1]", "seeds = [0, 1]\n" + extra_table_keys, 1)
    (specs / "smoke.toml").write_text(text)
    return specs / "smoke.toml"


def test_import_adopts_an_older_record_of_the_same_training_config(uninterrupted, tmp_path):
    from geneval.leaderboard.runner import run

    line = next(json.loads(l) for l in (uninterrupted / "records" / "smoke.jsonl").read_text().splitlines()
                if json.loads(l)["row"] == "DCGAN" and json.loads(l)["seed"] == 0)
    record = json.loads((Path(line["path"]) / "record.json").read_text())
    imports = tmp_path / "leaderboards" / "records" / "gan"
    imports.mkdir(parents=True)
    older = json.loads(json.dumps(record))
    del older["config"]["attention_block"]  # a switch added after the run: its default cannot have mattered
    older["config"]["eval_metrics"] = ["fid"]  # the run reported fewer metrics: the table leaves cells empty
    (imports / "older.json").write_text(json.dumps(older))
    other = json.loads(json.dumps(record))
    other["config"]["lr_g"] = 1e-3  # a different training config is never adopted
    other["config"]["seed"] = 1
    (imports / "other.json").write_text(json.dumps(other))

    spec = _smoke_copy(tmp_path, 'import = ["records/gan/*.json"]')
    lines = run(spec, runs_dir=tmp_path / "runs", records_dir=tmp_path / "records", train=False, echo=lambda _: None)
    assert [(l["row"], l["seed"], l["source"], l["path"]) for l in lines] == [("DCGAN", 0, "import",
                                                                               "records/gan/older.json")]
    assert lines[0]["metrics"]["final"]["fid"]["value"] == record["metrics"]["final"]["fid"]["value"]

    # the imported record is re-scored later: the next run adopts it again, then nothing is left to do
    older["metrics"]["final"]["fid"]["value"] = 12.5
    (imports / "older.json").write_text(json.dumps(older))
    messages = []
    again = run(spec, runs_dir=tmp_path / "runs", records_dir=tmp_path / "records", train=False,
                echo=messages.append)
    assert messages[0] == ("smoke: 1 of 4 (row, seed) already recorded; 4 to do "
                           "(1 of them: imported records changed since)")
    assert [l["metrics"]["final"]["fid"]["value"] for l in again] == [12.5]
    messages.clear()
    assert run(spec, runs_dir=tmp_path / "runs", records_dir=tmp_path / "records", train=False,
               echo=messages.append) == []
    assert messages[0] == "smoke: 1 of 4 (row, seed) already recorded; 3 to do"


def test_row_option_records_only_the_named_rows_now(uninterrupted, tmp_path):
    """``--row`` fills one row of a long table first (the cross-family table's PixelRNN rows, say); the other
    missing rows are left for a later call, and a name that is in no spec fails before anything runs."""
    from geneval.leaderboard.runner import run

    messages = []
    lines = run(SMOKE, runs_dir=uninterrupted / "runs", records_dir=tmp_path / "records", train=False,
                echo=messages.append, rows=["+ SN in D"])
    assert sorted((l["row"], l["seed"]) for l in lines) == [("+ SN in D", 0), ("+ SN in D", 1)]
    assert messages[0] == "smoke: 0 of 4 (row, seed) already recorded; 4 to do, 2 of them now (--row), 2 later"

    # rows are taken in the order named, not the spec's ("DCGAN" is the spec's first row)
    again = run(SMOKE, runs_dir=uninterrupted / "runs", records_dir=tmp_path / "both", train=False,
                echo=messages.append, rows=["+ SN in D", "DCGAN"])
    assert [(l["row"], l["seed"]) for l in again] == [("+ SN in D", 0), ("+ SN in D", 1), ("DCGAN", 0), ("DCGAN", 1)]

    done = subprocess.run([GENEVAL, "leaderboard", "run", str(SMOKE), "--row", "SN in D", "--runs-dir",
                           str(tmp_path / "runs"), "--records-dir", str(tmp_path / "more")],
                          capture_output=True, text=True, env=ENV, timeout=300)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (f"Error: row 'SN in D' is in none of {SMOKE}; "
                                                    "rows: + SN in D, DCGAN")
    assert not (tmp_path / "runs").exists() and not (tmp_path / "more").exists()


def test_several_specs_share_one_pool_and_a_run_folder_is_trained_once(tmp_path):
    """Two specs whose rows need the same run folders (like the BigGAN baseline and SAGAN's feat14 row), run in
    one call with two workers: each folder is trained once and both tables record it."""
    from geneval.leaderboard.runner import run

    specs = tmp_path / "specs"
    specs.mkdir()
    first, twin = specs / "smoke.toml", specs / "twin.toml"
    first.write_text(SMOKE.read_text())
    twin.write_text(SMOKE.read_text().replace('name = "smoke"', 'name = "twin"', 1))
    messages = []
    lines = run([first, twin], jobs=2, runs_dir=tmp_path / "runs", records_dir=tmp_path / "records",
                echo=messages.append)
    assert len(lines) == 8 and len(list((tmp_path / "runs").iterdir())) == 4
    assert messages[:2] == ["smoke: 0 of 4 (row, seed) already recorded; 4 to do",
                            "twin: 0 of 4 (row, seed) already recorded; 4 to do"]
    recorded = {name: sorted((l["row"], l["seed"], l["path"]) for l in map(json.loads, (tmp_path / "records" /
                                                                                       f"{name}.jsonl").open()))
                for name in ("smoke", "twin")}
    assert recorded["smoke"] == recorded["twin"] and len(recorded["smoke"]) == 4


@pytest.mark.parametrize("row, other_spec, other_row", [
    ("ProGAN", "stylegan_ablation", "A ProGAN baseline"),
    ("StyleGAN", "stylegan_ablation", "F + mixing regularisation"),
    ("DDPM", "ddpm_sampling", "DDIM η=0, S=50"),
])
def test_cross_family_rows_share_the_runs_of_the_tables_they_say_they_reuse(row, other_spec, other_row):
    """The cross-family notes say these rows adopt another table's runs: every seed must resolve to the same
    training config (run folder), or the runner would silently train them again."""
    from geneval.leaderboard.spec import config_hashes, load_spec, resolve

    specs = ROOT / "leaderboards" / "specs"
    cross, other = load_spec(specs / "cross_family.toml"), load_spec(specs / f"{other_spec}.toml")
    mine = next(r for r in cross.rows if r.name == row)
    theirs = next(r for r in other.rows if r.name == other_row)
    for seed in mine.seeds:
        assert seed in theirs.seeds
        ours, their = (config_hashes(r, resolve(s, r, seed)[1])[0] for s, r in ((cross, mine), (other, theirs)))
        assert (mine.trainer, mine.preset, mine.budget, ours) == (theirs.trainer, theirs.preset, theirs.budget, their)


def test_findings_compare_only_rows_measured_with_the_same_protocol(uninterrupted, tmp_path):
    from geneval.leaderboard.build import build

    spec = _smoke_copy(tmp_path)
    records = tmp_path / "records"
    records.mkdir()
    lines = [json.loads(l) for l in (uninterrupted / "records" / "smoke.jsonl").read_text().splitlines()]
    (records / "smoke.jsonl").write_text("".join(json.dumps(l) + "\n" for l in lines))
    build(spec, records_dir=records, tables_dir=tmp_path / "same")
    same = (tmp_path / "same" / "smoke.md").read_text()
    assert "not comparable" not in same and "s.e. of the difference" in same

    for line in lines:  # the same records, as if the SN row had been scored with fewer samples
        if line["row"] == "+ SN in D":
            line["evaluation"]["num_samples"] = 32
    (records / "smoke.jsonl").write_text("".join(json.dumps(l) + "\n" for l in lines))
    build(spec, records_dir=records, tables_dir=tmp_path / "differ")
    differ = (tmp_path / "differ" / "smoke.md").read_text()
    assert ("**not comparable here**: '+ SN in D' and 'DCGAN' measured fid with different protocols "
            "(32 vs 64 samples)") in differ
    header = next(l for l in same.splitlines() if l.startswith("| Row |")).split(" | ")
    fid, kid = header.index("FID (final) ↓"), header.index("KID (final) ↓")
    same_row = next(l for l in same.splitlines() if l.startswith("| + SN in D |")).split(" | ")
    sn_row = next(l for l in differ.splitlines() if l.startswith("| + SN in D |")).split(" | ")
    assert "%)" in same_row[fid] and "%)" not in sn_row[fid]  # no Δ% against a baseline measured differently
    assert "%)" in sn_row[kid]  # KID is unbiased: its expectation does not depend on the sample count


def test_a_finding_that_expects_a_cost_is_judged_in_that_direction(uninterrupted, tmp_path):
    """Constructed records: SN's FID 50 points above the baseline's, seeds 1 apart. The smoke finding (SN improves
    FID) is then not reproduced, and the same comparison with expect = "worse" is reproduced."""
    from geneval.leaderboard.build import build

    spec = _smoke_copy(tmp_path)
    spec.write_text(spec.read_text() + '\n[[findings]]\nclaim = "SN costs FID here"\nrow = "+ SN in D"\n'
                                       'metric = "fid"\nexpect = "worse"\n')
    records = tmp_path / "records"
    records.mkdir()
    lines = [json.loads(l) for l in (uninterrupted / "records" / "smoke.jsonl").read_text().splitlines()]
    for line in lines:
        line["metrics"]["final"]["fid"]["value"] = (100.0 if line["row"] == "+ SN in D" else 50.0) + line["seed"]
    (records / "smoke.jsonl").write_text("".join(json.dumps(l) + "\n" for l in lines))
    build(spec, records_dir=records, tables_dir=tmp_path / "tables")
    table = (tmp_path / "tables" / "smoke.md").read_text()
    assert "- Spectral normalisation in D improves FID (Miyato et al. 2018): **not reproduced**" in table
    assert "- SN costs FID here: **reproduced** at this scale — '+ SN in D' vs 'DCGAN', fid final: 100.50 vs 50.50" \
        in table


def test_rescoring_without_an_option_reproduces_the_runs_own_numbers(uninterrupted):
    """A truncation row is compared with the row it re-scores, so the re-scoring path must give the trainer's
    own end-of-run numbers when no option is set (same checkpoint, sample seeds, labels, extractor)."""
    from geneval.leaderboard.spec import load_spec, resolve

    line = next(json.loads(l) for l in (uninterrupted / "records" / "smoke.jsonl").read_text().splitlines()
                if json.loads(l)["row"] == "DCGAN" and json.loads(l)["seed"] == 1)
    spec = load_spec(SMOKE)
    trainer, config = resolve(spec, spec.rows[0], 1)
    values, protocol = trainer.evaluate(Path(line["path"]), config=config, which="final", metrics=("fid", "kid"))
    assert protocol["truncation"] is None and protocol["num_samples"] == line["evaluation"]["num_samples"]
    for metric in ("fid", "kid"):
        assert values[metric]["value"] == line["metrics"]["final"][metric]["value"], metric


def test_a_best_checkpoint_taken_at_the_last_step_is_scored_once(uninterrupted, tmp_path):
    """One-seed tables re-score final and best with a bootstrap interval (minutes per checkpoint at 10k samples);
    when the best checkpoint is the last step, the final's numbers are reused instead of recomputed."""
    from geneval.leaderboard.runner import _evaluation_time
    from geneval.leaderboard.spec import load_spec, resolve

    path = tmp_path / "one_seed.toml"
    path.write_text(SMOKE.read_text().replace("seeds = [0, 1]", "seeds = [0]", 1)
                    .replace("num_ref = 256", "num_ref = 256\nci = 0.9\nci_resamples = 5", 1))
    spec = load_spec(path)
    trainer, config = resolve(spec, spec.rows[0], 0)
    line = next(json.loads(l) for l in (uninterrupted / "records" / "smoke.jsonl").read_text().splitlines()
                if json.loads(l)["row"] == "DCGAN" and json.loads(l)["seed"] == 0)
    record = json.loads((Path(line["path"]) / "record.json").read_text())

    class Counting:  # the real plugin, counting its evaluations
        calls: list[str] = []

        def evaluate(self, run_dir, *, which, **options):
            self.calls.append(which)
            return trainer.evaluate(run_dir, which=which, **options)

    counting = Counting()
    for best_step, calls in ((record["steps"], ["final"]), (record["steps"] - 1, ["final", "best"])):
        counting.calls.clear()
        metrics, _ = _evaluation_time(spec, spec.rows[0], counting, config, {**record, "best_step": best_step},
                                      Path(line["path"]))
        assert counting.calls == calls and "ci_half_width" in metrics["best"]["fid"]["details"]


def test_a_row_may_train_its_own_seeds(uninterrupted, tmp_path):
    """A row's ``seeds`` replace the table's for that row only (an expensive row trained once beside cheap rows
    trained three times): the plan, the Seeds column and the statistics footer follow each row's seeds."""
    from geneval.leaderboard.build import build
    from geneval.leaderboard.runner import plan
    from geneval.leaderboard.spec import load_spec

    spec_path = _smoke_copy(tmp_path)
    spec_path.write_text(spec_path.read_text().replace("sn_d = true", "sn_d = true\nseeds = [1]", 1))
    spec = load_spec(spec_path)
    assert [row.seeds for row in spec.rows] == [(0, 1), (1,)] and spec.seeds == (0, 1)
    assert [(spec.rows[t.row_index].name, t.seed) for t in plan(spec, runs_dir=tmp_path / "runs")] == [
        ("DCGAN", 0), ("DCGAN", 1), ("+ SN in D", 1)]
    build(spec_path, records_dir=uninterrupted / "records", tables_dir=tmp_path / "tables")
    table = (tmp_path / "tables" / "smoke.md").read_text()
    rows = {line.split(" | ")[0]: line.split(" | ") for line in table.splitlines() if line.startswith("| ")}
    assert rows["| DCGAN (baseline)"][-2] == "2/2" and rows["| + SN in D"][-2] == "1/1"
    assert "over training seeds [0, 1] ([1]: row '+ SN in D')" in table
    assert "(3 used, 1 from other configs ignored)" in table  # the SN row's seed-0 record is not planned


def test_a_shown_value_missing_from_the_first_seed_comes_from_the_next(uninterrupted, tmp_path):
    """A record that predates a shown key (an adopted seed-0 record, say) leaves the cell to the seeds recorded
    later instead of showing "–" for the row."""
    from geneval.leaderboard.build import build

    spec = _smoke_copy(tmp_path)
    records = tmp_path / "records"
    records.mkdir()
    lines = [json.loads(l) for l in (uninterrupted / "records" / "smoke.jsonl").read_text().splitlines()]
    for line in lines:
        if line["seed"] == 0:
            del line["params_m"]["generator"]
    (records / "smoke.jsonl").write_text("".join(json.dumps(l) + "\n" for l in lines))
    build(spec, records_dir=records, tables_dir=tmp_path / "tables")
    table = (tmp_path / "tables" / "smoke.md").read_text()
    header = next(l for l in table.splitlines() if l.startswith("| Row |")).split(" | ")
    column = header.index("G params (M)")
    seed1 = {l["row"]: l["params_m"]["generator"] for l in lines if l["seed"] == 1}
    for row in ("DCGAN", "+ SN in D"):
        cells = next(l for l in table.splitlines() if l.startswith(f"| {row}")).split(" | ")
        assert cells[column] == f"{seed1[row]:.3f}"


def test_a_gap_column_is_the_mean_minus_the_recorded_reference(uninterrupted, tmp_path):
    """[columns] gap = { fid = "<line key>" }: a column after FID with mean − the records' value, signed; a row
    whose records carry none shows "–"; a gap on a metric the table does not show, or to a key no line carries,
    fails at load, naming the line. (The likelihood tables use it with the papers' values, ``published.nats``.)"""
    from geneval.errors import GenevalInputError
    from geneval.leaderboard.build import build
    from geneval.leaderboard.spec import load_spec

    spec = _smoke_copy(tmp_path)
    text = spec.read_text()
    spec.write_text(text.replace("[columns]\n", '[columns]\ngap = { fid = "wall_time_s" }\n', 1))
    records = tmp_path / "records"
    records.mkdir()
    lines = [json.loads(l) for l in (uninterrupted / "records" / "smoke.jsonl").read_text().splitlines()]
    for line in lines:
        line["metrics"]["final"]["fid"]["value"] = 50.0 + line["seed"]
        line["wall_time_s"] = 40.25 if line["row"] == "DCGAN" else None
    (records / "smoke.jsonl").write_text("".join(json.dumps(l) + "\n" for l in lines))
    build(spec, records_dir=records, tables_dir=tmp_path / "tables")
    table = (tmp_path / "tables" / "smoke.md").read_text()
    header = next(l for l in table.splitlines() if l.startswith("| Row |")).split(" | ")
    column = header.index("Gap to wall_time_s (final)")
    assert header[column - 1] == "FID (final) ↓"
    cells = {row: next(l for l in table.splitlines() if l.startswith(f"| {row}")).split(" | ")
             for row in ("DCGAN", "+ SN in D")}
    assert cells["DCGAN"][column] == "+10.25" and cells["+ SN in D"][column] == "–"

    spec.write_text(text.replace("[columns]\n", '[columns]\ngap = { fid = "published.fid" }\n', 1))
    with pytest.raises(GenevalInputError, match=r"smoke.toml:\d+: \[columns\] gap: 'published.fid' is not a key"):
        load_spec(spec)
    spec.write_text(text.replace("[columns]\n", '[columns]\ngap = { test_nats = "published.nats" }\n', 1))
    with pytest.raises(GenevalInputError, match=r"smoke.toml:\d+: \[columns\] gap: expected"):
        load_spec(spec)
