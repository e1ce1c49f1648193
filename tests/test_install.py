"""Install the way users install: build the wheel and sdist (`python -m build`), install the wheel without
extras into a fresh virtualenv, offline, and run the README's commands from outside the checkout.

The fresh virtualenv gets the wheel's *declared* runtime dependencies and nothing else: their installed
distributions (and their own dependencies, recursively) are linked into it from this environment, so that pip,
offline, finds them satisfied — a multi-gigabyte torch is not copied. A module that imports a package the
wheel does not declare (matplotlib, say) then fails here exactly as it would for a user.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytest.importorskip("build", reason="the wheel test needs `build` (pip install -e '.[test]')")


def _source_tree(to: Path) -> Path:
    """A copy of the checkout's files (tracked and new, not ignored): building never writes into the checkout."""
    listed = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (to / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, to / name)
    return to


def _closure(requirements: list[str]) -> dict[str, metadata.Distribution]:
    """The installed distributions that satisfy ``requirements`` (Requires-Dist lines), recursively, with the
    dependencies of every extra a requirement asks for (torch's ``cuda-toolkit[cublas, ...]``)."""
    from packaging.requirements import Requirement

    found: dict[str, metadata.Distribution] = {}
    done: set[tuple[str, str]] = set()
    todo = [(Requirement(r), "") for r in requirements]
    while todo:
        requirement, extra = todo.pop()
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": extra}):
            continue  # an extra nobody asked for, or another platform's dependency
        name = requirement.name.lower().replace("_", "-")
        dist = found.get(name) or metadata.distribution(requirement.name)
        assert not requirement.specifier or dist.version in requirement.specifier, (str(requirement), dist.version)
        found[name] = dist
        for wanted in ("", *sorted(requirement.extras)):
            if (name, wanted) not in done:
                done.add((name, wanted))
                todo += [(Requirement(r), wanted) for r in dist.requires or []]
    return found


def _link_into(site: Path, dists: dict[str, metadata.Distribution]) -> None:
    for dist in dists.values():
        base = Path(dist.locate_file(""))
        tops = {Path(str(f)).parts[0] for f in dist.files or [] if not str(f).startswith("..")}
        for top in tops:
            if not (site / top).exists() and (base / top).exists():
                (site / top).symlink_to(base / top)


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("install")
    source = _source_tree(tmp / "src")
    dist = tmp / "dist"
    built = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(dist), str(source)],
                           capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
    wheel = next(dist.glob("geneval-*.whl"))
    assert next(dist.glob("geneval-*.tar.gz"))

    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    import zipfile

    with zipfile.ZipFile(wheel) as archive:
        meta = archive.read(next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))).decode()
        names = archive.namelist()
    requires = [line.split(":", 1)[1].strip() for line in meta.splitlines() if line.startswith("Requires-Dist:")]
    _link_into(site, _closure(requires))
    done = subprocess.run([str(python), "-m", "pip", "install", "--no-index", "--find-links", str(dist),
                           "--disable-pip-version-check", "geneval"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]

    work = tmp / "work"  # outside the checkout: nothing of it on sys.path
    work.mkdir()
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(tmp / "home"), "OMP_NUM_THREADS": "1",
           "GENEVAL_CACHE": str(tmp / "cache"), "LANG": "C.UTF-8"}
    return {"venv": venv, "python": python, "work": work, "env": env, "wheel_files": names, "tmp": tmp}


def _run(installed, *args, timeout=600) -> subprocess.CompletedProcess:
    done = subprocess.run(list(args), capture_output=True, text=True, cwd=installed["work"], env=installed["env"],
                          timeout=timeout)
    assert done.returncode == 0, f"{args}: {done.stderr[-3000:]}"
    return done


def test_the_wheel_carries_the_weights_package_data_and_entry_points(installed):
    names = installed["wheel_files"]
    for weights in ("fashion-mnist-cnn", "mnist-cnn", "cifar10-cnn"):
        assert f"geneval/weights/{weights}.pt" in names and f"geneval/weights/{weights}.json" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    import zipfile

    wheel = next((installed["tmp"] / "dist").glob("*.whl"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "geneval = geneval.cli:main" in text and "[geneval.trainers]" in text


def test_every_module_imports_with_only_the_declared_dependencies(installed):
    code = ("import importlib, pkgutil, geneval, trainers\n"
            "assert 'site-packages' in geneval.__file__, geneval.__file__\n"
            "for package in (geneval, trainers):\n"
            "    for info in pkgutil.walk_packages(package.__path__, package.__name__ + '.'):\n"
            "        if not info.name.endswith('__main__'):  # that one runs the CLI\n"
            "            importlib.import_module(info.name)\n"
            "print('ok')")
    assert _run(installed, str(installed["python"]), "-c", code).stdout.strip() == "ok"


def test_readme_commands_from_a_plain_install(installed):
    geneval = str(installed["venv"] / "bin" / "geneval")
    assert "version" in _run(installed, geneval, "--version").stdout
    assert "version" in _run(installed, str(installed["python"]), "-m", "geneval", "--version").stdout
    assert "fashion-mnist" in _run(installed, geneval, "datasets").stdout
    scored = json.loads(_run(installed, geneval, "score", "fashion-mnist:test", "--ref", "fashion-mnist:train",
                             "--num", "500", "--json", "-q").stdout)
    assert scored  # the weights came from the wheel (sha256-checked at load)
    _run(installed, geneval, "train", "gan", "--preset", "dcgan", "--budget", "smoke", "--dataset", "fashion-mnist",
         "--out", "gan")
    record = json.loads((installed["work"] / "gan" / "record.json").read_text())
    assert record["metrics"]["final"]["fid"]["value"] > 0 and (installed["work"] / "gan" / "curves.png").is_file()
    _run(installed, geneval, "train", "pixelcnn", "--dataset", "fashion-mnist", "--budget", "smoke", "--out", "pcnn")
    assert json.loads((installed["work"] / "pcnn" / "record.json").read_text())["metrics"]["final"]["test_nats"]
    # the committed smoke table rebuilds from its committed records with the installed package
    board = installed["work"] / "leaderboards"
    for folder, name in (("specs", "smoke.toml"), ("records", "smoke.jsonl")):
        (board / folder).mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / "leaderboards" / folder / name, board / folder / name)
    _run(installed, geneval, "leaderboard", "build", str(board / "specs" / "smoke.toml"))
    assert (board / "tables" / "smoke.md").read_bytes() == (ROOT / "leaderboards" / "tables" / "smoke.md").read_bytes()


def test_a_missing_plotting_library_stops_a_run_before_it_starts(installed, tmp_path):
    """A GAN run draws its curves at the end: without matplotlib it must fail at the start, one line, nothing
    written — never after training, losing the record."""
    code = ("import sys; sys.modules['matplotlib'] = None\n"  # as if matplotlib were not installed
            "from geneval.cli import main\n"
            "main(['train', 'gan', '--preset', 'dcgan', '--budget', 'smoke', '--out', sys.argv[1]], prog_name='geneval')")
    out = tmp_path / "run"
    done = subprocess.run([str(installed["python"]), "-c", code, str(out)], capture_output=True, text=True,
                          cwd=installed["work"], env=installed["env"], timeout=300)
    assert done.returncode == 2, done.stderr[-2000:]
    error = done.stderr.strip().splitlines()[-1]
    assert error.startswith("Error: a GAN run") and "matplotlib" in error and len(error) <= 200, error
    assert not out.exists()
