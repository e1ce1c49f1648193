"""Run the ``geneval`` CLI in many short-lived processes without paying Python + torch start-up each time.

``ForkServer`` starts one Python that imports ``geneval.cli`` (no torch op runs there), then forks one child
per request: the child gets its own working folder, environment, stdin (/dev/null), stdout and stderr files
and exit status, and runs ``geneval ARGS`` exactly as the console script would, minus the import. The
server waits for the child with a timeout, or SIGKILLs it after ``kill_after_s`` seconds (the kill tests).
Used by tests/test_bad_inputs.py and tests/test_safety.py; not a test module itself.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

SERVER = r"""
import json, os, signal, sys, time
from geneval.cli import main

for line in sys.stdin:
    request = json.loads(line)
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.chdir(request["cwd"])
            os.environ.update(request["env"])
            for fd, name, flags in ((0, os.devnull, os.O_RDONLY), (1, request["stdout"], os.O_WRONLY | os.O_CREAT),
                                    (2, request["stderr"], os.O_WRONLY | os.O_CREAT)):
                os.dup2(os.open(name, flags | (os.O_TRUNC if fd else 0), 0o644), fd)
            sys.argv = ["geneval", *request["args"]]
            main(args=request["args"], prog_name="geneval")
            code = 0
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
        except BaseException:
            import traceback
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    started = time.monotonic()
    limit = request["kill_after_s"] if request.get("kill_after_s") is not None else request["timeout"]
    status = None
    while status is None:
        done, raw = os.waitpid(pid, os.WNOHANG)
        if done:
            status = os.waitstatus_to_exitcode(raw)
        elif time.monotonic() - started > limit:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            status = "killed" if request.get("kill_after_s") is not None else "timeout"
        else:
            time.sleep(0.002)
    print(json.dumps({"status": status, "wall_s": time.monotonic() - started}), flush=True)
"""


class ForkServer:
    def __init__(self, env: dict | None = None):
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", **(env or {})}
        self._process = subprocess.Popen([sys.executable, "-c", SERVER], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, text=True, env=env)

    def run(self, args: list, *, cwd: Path, env: dict, timeout_s: float = 60, kill_after_s: float | None = None
            ) -> tuple[subprocess.CompletedProcess | None, str]:
        """(completed process, status): status "exited", "timeout" (result None) or "killed" (result None)."""
        cwd = Path(cwd)
        tag = uuid.uuid4().hex[:12]  # several servers may run in one folder at once
        out, err = cwd.parent / f".{cwd.name}.{tag}.stdout", cwd.parent / f".{cwd.name}.{tag}.stderr"
        request = {"cwd": str(cwd), "env": env, "args": [str(a) for a in args], "timeout": timeout_s,
                   "kill_after_s": kill_after_s, "stdout": str(out), "stderr": str(err)}
        self._process.stdin.write(json.dumps(request) + "\n")
        self._process.stdin.flush()
        reply = json.loads(self._process.stdout.readline())
        status = reply["status"]
        if status in ("timeout", "killed"):
            return None, status
        result = subprocess.CompletedProcess(args, status, out.read_text(errors="replace"),
                                             err.read_text(errors="replace"))
        out.unlink()
        err.unlink()
        return result, "exited"

    def close(self) -> None:
        self._process.stdin.close()
        self._process.wait(timeout=30)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
