"""The ``redestyle`` command (also ``python -m redestyle``): argument parsing only.

Building the parser imports no torch (``redestyle --help`` and every verb's ``--help`` answer in
a fraction of a second, without weights or a GPU): the options of every verb are declared here
or in torch-free modules, and each verb's body is imported inside the verb.

Errors: whatever a verb raises becomes one line ``redestyle <verb>: <problem>`` on stderr and
exit status 1 (an interrupt: 130); ``-v``/``--verbose`` or ``--debug`` shows the full trace.
"""

from __future__ import annotations

import argparse
import logging
import sys

from .config import BASELINE, DEFAULT_PROFILE, PROFILES

# imaging.MIN_SIDE (imaging imports torch; tests/test_cli.py keeps the two equal)
MIN_SIDE = 32
# A CheckpointMismatchError lists keys over a few lines; more than this is cut (--debug: all).
MAX_ERROR_LINES = 8

PROFILE_HELP = (f"network configuration: mini (trained on the miniature world, shipped), tiny (seeded "
                f"random weights: mechanics only) or ffhq1024 (official weights, needs --weights); "
                f"default {DEFAULT_PROFILE}")
DEVICE_HELP = "cpu, cuda, cuda:N or auto (cuda when available; default auto)"
WEIGHTS_HELP = "official weights folder for --profile ffhq1024 (default $REDESTYLE_WEIGHTS)"


def _weights(args) -> int:
    from . import checkpoints

    return checkpoints.main_weights_list(args)


def _align(args) -> int:
    from .align import cli_align

    return cli_align(args)


def _destylize(args) -> int:
    from .jobs import cli_destylize

    return cli_destylize(args)


def _train(args) -> int:
    from .train.cli import cli_train

    return cli_train(args)


def _transfer(args) -> int:
    from .transfer import cli_transfer

    return cli_transfer(args)


def _reproduce(args) -> int:
    from . import reproduce

    return reproduce.main(args)


def add_align_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``align`` verb's arguments to ``parser`` (body: ``align.cli_align``)."""
    parser.add_argument("in_dir", help="folder of photos or portraits (searched recursively); images that "
                        "are already FFHQ-aligned need no second alignment (it shifts them 5-11 px at 1024)")
    parser.add_argument("out_dir", help="where the aligned PNGs and report.json go (re-running resumes; "
                        "one run per folder at a time)")
    parser.add_argument("--size", type=int, default=1024, help="output side in pixels (default 1024)")
    parser.add_argument("--transform-size", type=int, default=None,
                        help="QUAD transform side before the final resize (default 4*size as FFHQ; "
                        "the pSp/DualStyleGAN encoder scripts use size)")
    parser.add_argument("--upsample", type=int, default=1,
                        help="dlib detector upsampling (default 1, as the official scripts); 2 or 3 find "
                        "small or soft faces that 1 misses, at about 4x or 16x the detection time")
    return parser


def add_destylize_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``destylize`` verb's arguments to ``parser`` (body: ``jobs.cli_destylize``)."""
    parser.add_argument("in_dir", help="folder of FFHQ-aligned square portraits (searched recursively). "
                        "Any image convertible to RGB (grey, palette, CMYK, 16-bit, RGBA over white) "
                        "is resized to the network size; files that are not images, not square or "
                        f"under {MIN_SIDE} px are reported (one line each, run `redestyle align` on raw "
                        "photos) and skipped, and the exit status is then 1")
    parser.add_argument("--out", dest="out_dir", required=True,
                        help="where exstyle_code.npy, instyle_code.npy, codes_meta.json, previews/ "
                        "and report.json go (re-running resumes; one run per folder at a time)")
    parser.add_argument("--method", choices=["redestyle", "baseline"], default="redestyle",
                        help="Re-Destyle (encoder only, W+ codes) or DualStyleGAN's optimization "
                        "baseline (z+ codes; needs g'); default redestyle")
    parser.add_argument("--schedule", default="5-3-1", help="Re-Destyle rounds of ReStyle iterations "
                        "(default 5-3-1; e.g. 6-4-2)")
    parser.add_argument("--profile", choices=list(PROFILES), default=DEFAULT_PROFILE, help=PROFILE_HELP)
    parser.add_argument("--weights", default=None, help=WEIGHTS_HELP)
    parser.add_argument("--batch", type=int, default=1, help="images per batch (default 1)")
    parser.add_argument("--device", default="auto", help=DEVICE_HELP)
    parser.add_argument("--steps", type=int, default=BASELINE.steps,
                        help=f"baseline Adam steps (default {BASELINE.steps}, DualStyleGAN's --iter)")
    parser.add_argument("--joint-batch", action="store_true",
                        help="baseline: optimise the images of a --batch in one Adam run (per-image terms: "
                        "the same optimisation, faster on a GPU; rounding differs, which Adam amplifies for "
                        "a few elements). Default: one image at a time, as DualStyleGAN's destylize.py")
    parser.add_argument("--preserve-color", action="store_true",
                        help="Re-Destyle: copy z_e entries 8.. into z_i (the baseline always does)")
    parser.add_argument("--truncation", type=float, default=None,
                        help="Re-Destyle: truncate z_i toward latent_avg with this psi (default off); "
                        f"baseline: render psi (default {BASELINE.truncation}, toward w = 0 as DualStyleGAN)")
    parser.add_argument("--handoff", choices=["pool", "early"], default="pool",
                        help="Re-Destyle: 'pool' pools the full output between iterations (exact, "
                        "default); 'early' stops the generator at the encoder size (approximate)")
    parser.add_argument("--style", default=None,
                        help="baseline: style folder of g' (<weights>/<style>/finetune-000600.pt)")
    parser.add_argument("--seed", type=int, default=0, help="tiny weights / baseline noise seed (default 0)")
    parser.add_argument("--allow-random-loss-nets", action="store_true",
                        help="baseline with official weights: go on when vgg16-397923af.pth (LPIPS) or "
                        "model_ir_se50.pth (ID loss) is missing, with a random VGG16 / no ID term (not the "
                        "paper's losses; recorded in codes_meta.json). Default: a missing file is an error")
    parser.add_argument("--autocast", choices=["off", "bf16", "fp16"], default="off",
                        help="Re-Destyle: run under torch.autocast in this dtype (default off: fp32, the "
                        "official numerics; bf16 images stay within ~1 %% of fp32; fast on GPUs and on "
                        "CPUs with native bf16)")
    parser.add_argument("--compile", action="store_true",
                        help="Re-Destyle: torch.compile the encoder and the generator (first batch of "
                        "each size compiles for minutes; pays off for large folders on a GPU)")
    parser.add_argument("--no-previews", action="store_true", help="do not write previews/*.png")
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress bar on stderr (it is also off when stderr is not a terminal; "
                        "then one '[done/total] name' line per batch goes to stdout)")
    return parser


def add_transfer_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Options of ``redestyle transfer`` (official ``style_transfer.py`` names where they exist;
    body: ``transfer.cli_transfer``)."""
    parser.add_argument("content", nargs="?", default=None,
                        help="aligned face image (FFHQ alignment; `redestyle align`); mini: optional "
                        "(default: the shipped sample photo of the miniature world, 64 px)")
    parser.add_argument("--style-index", type=int, required=True,
                        help="index of the exemplar in the code file (insertion order, as --style_id)")
    parser.add_argument("--codes", default=None,
                        help="folder with exstyle_code.npy (+ codes_meta.json); mini: optional (default: "
                        "the shipped style set's 48 Re-Destyle codes)")
    parser.add_argument("--ckpt", default=None,
                        help="DualStyleGAN generator file (g_ema): ffhq1024: the official "
                        "<weights>/<style>/generator.pt; tiny: one `redestyle train finetune` wrote "
                        "(<out>/last.pt or <out>/generator-XXXXXX.pt); mini: optional (default: the "
                        "shipped DualStyleGAN fine-tuned on Re-Destyle codes, README: Fig. 6)")
    parser.add_argument("--weights", default=None, help=WEIGHTS_HELP + "; holds the content encoder")
    parser.add_argument("--profile", default=None, choices=list(PROFILES),
                        help=PROFILE_HELP.replace(f"default {DEFAULT_PROFILE}",
                                                  f"default: the codes' profile (codes_meta.json), "
                                                  f"else {DEFAULT_PROFILE}"))
    parser.add_argument("--structure-weight", type=float, default=0.75, help="ModRes weight (indices 0-6)")
    parser.add_argument("--color-weight", type=float, default=1.0, help="T_c weight (indices 7-17)")
    parser.add_argument("--weight", type=float, nargs="+", default=None,
                        help="all interp weights (18 at 1024); overrides the two above")
    parser.add_argument("--truncation", type=float, default=0.75,
                        help="psi of the intrinsic code toward w = 0, as style_transfer.py (default 0.75; "
                        "1 = off)")
    parser.add_argument("--preserve-color", action="store_true")
    parser.add_argument("--wplus", action="store_true",
                        help="encode the content into W+ (ReStyle-pSp, 5 iterations) instead of z+ "
                             "(DualStyleGAN's encoder.pt); the default follows the codes' space")
    parser.add_argument("--exstyle-name", default=None,
                        help="code file (default refined_exstyle_code.npy if present, else exstyle_code.npy)")
    parser.add_argument("--out", default="output", help="output folder (default output)")
    parser.add_argument("--name", default="transfer", help="output file prefix")
    parser.add_argument("--device", default="auto", help=DEVICE_HELP)
    parser.add_argument("--seed", type=int, default=0, help="seed of the tiny profile's networks")
    return parser


def _common() -> argparse.ArgumentParser:
    """-v/--debug, accepted before or after the verb (SUPPRESS: a verb's default never overrides)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                        help="log at INFO level; on an error, print the full trace")
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="log at DEBUG level; on an error, print the full trace")
    return common


def build_parser() -> argparse.ArgumentParser:
    """The parser of every verb; importing and building it loads no torch."""
    from .reproduce import add_arguments as reproduce_arguments
    from .train.cli import add_train_arguments  # torch-free: train/ loads its modules lazily

    common = _common()
    parser = argparse.ArgumentParser(
        prog="redestyle", parents=[common],
        description="Re-Destyle: encoder-only facial destylization for DualStyleGAN.",
    )
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)

    def verb(name, help_text, add, func):
        p = verbs.add_parser(name, help=help_text, description=help_text[:1].upper() + help_text[1:] + ".",
                             parents=[common])
        add(p)
        p.set_defaults(func=func)

    def weights_arguments(p):
        p.add_argument("action", choices=["list"], help="list the registry")
        p.add_argument("--weights", default=None, help="weights folder (default: $REDESTYLE_WEIGHTS)")

    verb("weights", "official weight files: what is known and present", weights_arguments, _weights)
    verb("align", "FFHQ-align the faces of a folder (dlib 68 landmarks)", add_align_arguments, _align)
    verb("destylize", "destylize a folder of portraits into DualStyleGAN code files",
         add_destylize_arguments, _destylize)
    verb("train", "fine-tune (or pretrain) DualStyleGAN on destylized codes; torchrun for several GPUs",
         add_train_arguments, _train)
    verb("transfer", "exemplar style transfer with a fine-tuned DualStyleGAN", add_transfer_arguments,
         _transfer)
    verb("reproduce", "run the notebooks headlessly (papermill): every figure", reproduce_arguments,
         _reproduce)
    return parser


def error_line(err: BaseException) -> str:
    """The problem of ``err`` for ``redestyle <verb>: <problem>``: the file first when an OSError
    names one, the class name when it is not an error of bad input (a bug to report), at most
    MAX_ERROR_LINES lines (the registry's weight errors add indented detail lines)."""
    if isinstance(err, OSError) and err.filename is not None and err.strerror:
        text = f"{err.filename}: {err.strerror}"
    else:
        text = str(err).strip() or type(err).__name__
    expected = (ValueError, OSError, RuntimeError, LookupError)
    if not isinstance(err, expected) or type(err) is RuntimeError:
        text = f"{type(err).__name__}: {text}"
    lines = text.splitlines()
    if len(lines) > MAX_ERROR_LINES:
        lines = [*lines[:MAX_ERROR_LINES], f"  ... ({len(lines) - MAX_ERROR_LINES} more lines: --debug)"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv``, run the verb, and turn any error into one line and a non-zero status."""
    args = build_parser().parse_args(argv)
    debug = getattr(args, "debug", False)
    trace = debug or getattr(args, "verbose", False)
    logging.basicConfig(level=logging.DEBUG if debug else logging.INFO if trace else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    profile = getattr(args, "profile", None)
    if getattr(args, "weights", None) and profile not in (None, "ffhq1024"):
        # the one default never switches silently: say that the folder is not used
        print(f"redestyle {args.verb}: warning: --weights is read only by --profile ffhq1024; this run uses "
              f"{profile}", file=sys.stderr)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        if trace:
            raise
        print(f"redestyle {args.verb}: interrupted", file=sys.stderr)
        return 130
    except SystemExit as exc:  # raise SystemExit("message") in a verb: a message, not a status
        if isinstance(exc.code, str):
            print(f"redestyle {args.verb}: {exc.code}", file=sys.stderr)
            return 1
        raise
    except Exception as err:
        if trace:
            raise
        print(f"redestyle {args.verb}: {error_line(err)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
