"""Run the numbered notebooks headlessly with papermill: every figure, one command."""

from __future__ import annotations

import ast
import logging
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .config import DEFAULT_PROFILE, PROFILES

log = logging.getLogger(__name__)

NOTEBOOK_PATTERN = re.compile(r"^(\d\d)_.+\.ipynb$")


@dataclass(frozen=True)
class NotebookResult:
    name: str
    seconds: float
    ok: bool
    error: str = ""


def find_notebooks(folder: Path, only: list[str] | None = None) -> list[Path]:
    """The ``NN_topic.ipynb`` notebooks of ``folder`` in order, optionally only numbers ``only``."""
    found = sorted(p for p in Path(folder).glob("*.ipynb") if NOTEBOOK_PATTERN.match(p.name))
    if only:
        wanted = {o.strip().zfill(2) for o in only if o.strip()}
        unknown = wanted - {NOTEBOOK_PATTERN.match(p.name).group(1) for p in found}
        if unknown:
            raise ValueError(f"no notebook numbered {', '.join(sorted(unknown))} in {folder}")
        found = [p for p in found if NOTEBOOK_PATTERN.match(p.name).group(1) in wanted]
    return found


def _describe_failure(exc: BaseException) -> str:
    """One line: the failing cell (papermill reports its index) and the error."""
    cell = getattr(exc, "exec_count", None) or getattr(exc, "cell_index", None)
    ename = getattr(exc, "ename", type(exc).__name__)
    evalue = getattr(exc, "evalue", str(exc)).strip().splitlines()
    where = f"cell {cell}: " if cell is not None else ""
    return f"{where}{ename}: {evalue[0] if evalue else ''}"


def run_notebooks(
    notebooks: list[Path],
    *,
    parameters: dict,
    executed_dir: Path,
    kernel_name: str = "python3",
    stream=None,
) -> list[NotebookResult]:
    """Execute each notebook with ``parameters`` injected; stop at the first failure.

    Executed copies (with outputs, also of a failed run) go to ``executed_dir``. One progress line
    per notebook is written to ``stream``.
    """
    import papermill

    stream = stream or sys.stdout
    executed_dir = Path(executed_dir)
    executed_dir.mkdir(parents=True, exist_ok=True)
    results: list[NotebookResult] = []
    for i, nb in enumerate(notebooks, 1):
        out = executed_dir / nb.name
        print(f"[{i}/{len(notebooks)}] {nb.name} ...", end="", file=stream, flush=True)
        start = time.perf_counter()
        try:
            papermill.execute_notebook(
                str(nb), str(out), parameters=parameters, kernel_name=kernel_name,
                cwd=str(nb.parent), progress_bar=False, log_output=False,
            )
        except Exception as exc:  # papermill raises PapermillExecutionError and kernel errors
            seconds = time.perf_counter() - start
            msg = _describe_failure(exc)
            print(f" FAILED after {seconds:.1f} s", file=stream, flush=True)
            results.append(NotebookResult(nb.name, seconds, False, msg))
            break
        seconds = time.perf_counter() - start
        print(f" ok ({seconds:.1f} s)", file=stream, flush=True)
        results.append(NotebookResult(nb.name, seconds, True))
    return results


#: the parameters every notebook's ``parameters`` cell has (``reproduce`` sets them from its options)
COMMON_PARAMETERS = ("profile", "weights_dir", "data_dir", "out_dir", "seed", "device")


def parse_settings(items: list[str] | None) -> dict:
    """``["n_iters=1", 'schedules=["2-1"]', "style=cartoon"]`` -> {name: value}.

    A value is read as a Python literal (numbers, None, lists, quoted strings), else kept as the
    plain string. Names must be identifiers, and not one that reproduce's own options set.
    """
    out = {}
    for item in items or []:
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep or not name.isidentifier():
            raise ValueError(f"--set {item!r}: expected NAME=VALUE, e.g. n_iters=1")
        if name in COMMON_PARAMETERS:
            raise ValueError(f"--set {name}=...: use reproduce's own option for {name!r}")
        try:
            out[name] = ast.literal_eval(text.strip())
        except (ValueError, SyntaxError):
            out[name] = text.strip()
    return out


def main(args) -> int:
    """``redestyle reproduce``: run notebooks, report, exit non-zero naming a failure."""
    root = Path(args.notebooks)
    notebooks = find_notebooks(root, args.only.split(",") if args.only else None)
    if not notebooks:
        print(f"no notebooks yet in {root}: nothing to reproduce")
        return 0
    figures = Path(args.figures).resolve()
    settings = parse_settings(getattr(args, "set", None))
    parameters = {
        "profile": args.profile,
        "weights_dir": str(Path(args.weights).resolve()) if args.weights else None,
        "data_dir": str(Path(args.data).resolve()) if args.data else None,
        "out_dir": str(figures),
        "seed": args.seed,
        "device": args.device,
        **settings,
    }
    print(f"reproducing {len(notebooks)} notebook(s), profile {args.profile}, figures -> {figures}")
    if args.profile == "tiny":  # the figures are labelled so too; say it before minutes of work
        print("redestyle reproduce: warning: tiny profile: random weights, the figures show mechanics only",
              file=sys.stderr)
    start = time.perf_counter()
    results = run_notebooks(notebooks, parameters=parameters, executed_dir=Path(args.executed))
    total = time.perf_counter() - start
    failed = [r for r in results if not r.ok]
    print(f"total {total:.1f} s; executed notebooks in {args.executed}")
    if failed:
        print(f"error: notebook {failed[0].name} failed: {failed[0].error}", file=sys.stderr)
        return 1
    return 0


def add_arguments(parser) -> None:
    parser.add_argument("--profile", default=DEFAULT_PROFILE, choices=list(PROFILES),
                        help=f"mini (trained on the miniature world), tiny (random networks) or ffhq1024 "
                        f"(official weights, needs --weights); default {DEFAULT_PROFILE}")
    parser.add_argument("--weights", default=None, help="folder with the official weights (ffhq1024)")
    parser.add_argument("--data", default=None, help="folder of portraits (default: bundled samples)")
    parser.add_argument("--only", default=None, help="comma-separated notebook numbers, e.g. 01,03")
    parser.add_argument("--notebooks", default="notebooks", help="folder of NN_*.ipynb notebooks")
    parser.add_argument("--figures", default="figures", help="where the figures are written")
    parser.add_argument("--executed", default="outputs/notebooks", help="executed notebook copies")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--set", action="append", metavar="NAME=VALUE", default=None,
                        help="a notebook parameter (repeatable; a Python literal or a string), e.g. "
                        "--set n_iters=1 --set 'schedules=[\"2-1\"]' for a quick run; every notebook "
                        "gets it, those without that parameter ignore it")
