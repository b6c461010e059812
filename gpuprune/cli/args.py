"""Argument types shared by the command modules (argparse ``type=`` callables)."""

import argparse


def integer(text):
    """An integer in any base Python reads (``42``, ``0x2a``): seeds and counts."""
    try:
        return int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
