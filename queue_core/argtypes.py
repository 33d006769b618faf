"""argparse types for the command-line tools (``queue-consumer`` and the bus's commands)."""
from __future__ import annotations

import argparse
from typing import Callable, TypeVar

N = TypeVar('N', int, float)


def _bounded(kind: Callable[[str], N], lowest: N, strict: bool,
             wording: str) -> Callable[[str], N]:
    def parse(text: str) -> N:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError('must be %s, got %r' % (wording, text)) from None
        if value < lowest or (strict and value == lowest):
            raise argparse.ArgumentTypeError('must be %s, got %s' % (wording, text))
        return value
    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


#: An integer of at least 1.
positive_int = _bounded(int, 1, False, 'a whole number of at least 1')
#: An integer of 0 or more.
non_negative_int = _bounded(int, 0, False, 'a whole number of 0 or more')
#: A number greater than 0 (seconds, usually).
positive_float = _bounded(float, 0.0, True, 'a positive number')
#: A number of 0 or more.
non_negative_float = _bounded(float, 0.0, False, 'a number of 0 or more')
