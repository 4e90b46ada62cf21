"""The ``redestyle`` command (also ``python -m redestyle``).

Every verb's ``--help`` works without weights or a GPU: heavy modules are imported only
inside the verb that needs them.
"""

from __future__ import annotations

import argparse
import logging
import sys


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="redestyle",
        description="Re-Destyle: encoder-only facial destylization for DualStyleGAN.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)

    p = verbs.add_parser("weights", help="official weight files: what is known and present")
    p.add_argument("action", choices=["list"], help="list the registry")
    p.add_argument("--weights", default=None, help="weights folder (default: $REDESTYLE_WEIGHTS)")
    p.set_defaults(func=_weights)

    from .align import add_align_arguments

    p = verbs.add_parser("align", help="FFHQ-align the faces of a folder (dlib 68 landmarks)")
    add_align_arguments(p)
    p.set_defaults(func=_align)

    from .jobs import add_destylize_arguments

    p = verbs.add_parser("destylize", help="destylize a folder of portraits into DualStyleGAN code files")
    add_destylize_arguments(p)
    p.set_defaults(func=_destylize)

    from .train.cli import add_train_arguments

    p = verbs.add_parser("train", help="fine-tune (or pretrain) DualStyleGAN on destylized codes; torchrun for several GPUs")
    add_train_arguments(p)
    p.set_defaults(func=_train)

    from .transfer import add_transfer_arguments

    p = verbs.add_parser("transfer", help="exemplar style transfer with a fine-tuned DualStyleGAN")
    add_transfer_arguments(p)
    p.set_defaults(func=_transfer)

    from .reproduce import add_arguments as reproduce_arguments

    p = verbs.add_parser("reproduce", help="run the notebooks headlessly (papermill): every figure")
    reproduce_arguments(p)
    p.set_defaults(func=_reproduce)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
