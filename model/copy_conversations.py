"""``python -m model.copy_conversations --from conversations.json --to postgresql://...``
(``make copy-conversations``, or its older name ``make migrate``): copy every conversation from one
store to another, then check that each arrived whole. No schema changes: it copies data.

Either side is anything CONVERSATIONS_URL accepts (a JSON file, PostgreSQL, Redis). A name that
already exists at the destination is replaced (the copy is the source's).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from model.store import StoreError
from model.stores import open_store


def copy_conversations(source: str, destination: str) -> tuple[int, int]:
    """Copy every conversation from ``source`` to ``destination`` and verify the message counts.

    Returns:
        ``(conversations, messages)`` copied.

    Raises:
        StoreError: a store cannot be opened, read or written, or a copied conversation's messages
            differ at the destination (the sentence names the first one).
    """
    src, dst = open_store(source), open_store(destination)
    try:
        conversations = src.load_all()
        for name, messages in conversations.items():
            dst.save(name, messages)
        for name, messages in conversations.items():
            copied = dst.get(name)
            if copied != messages:
                got = "nothing" if copied is None else f"{len(copied)} message(s)"
                raise StoreError(f"{name!r} has {len(messages)} message(s) in the source but {got} after copying.")
        return len(conversations), sum(len(m) for m in conversations.values())
    finally:
        src.close()
        dst.close()


def copy_command(
    argv: list[str] | None,
    prog: str,
    description: str | None,
    copy: Callable[[str, str], str],
    failures: tuple[type[Exception], ...],
) -> int:
    """A ``--from``/``--to`` copy command line: runs ``copy(source, destination)``, which returns
    what it did as a sentence, and prints that; returns the exit code (1 when ``copy`` raised one of
    ``failures``, its sentence on stderr; 2 for bad arguments, from argparse)."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--from", dest="source", required=True, help="where to copy from")
    parser.add_argument("--to", dest="destination", required=True, help="where to copy to")
    args = parser.parse_args(argv)
    try:
        done = copy(args.source, args.destination)
    except failures as exc:
        print(f"Copying failed: {exc}", file=sys.stderr)
        return 1
    print(done)
    return 0


def main(argv: list[str] | None = None) -> int:
    """The command line; returns the exit code (1 on a failure, with its sentence on stderr)."""

    def copy(source: str, destination: str) -> str:
        conversations, messages = copy_conversations(source, destination)
        return f"Copied {conversations} conversation(s) with {messages} message(s); every count verified."

    return copy_command(argv, "python -m model.copy_conversations", __doc__, copy, (StoreError,))


if __name__ == "__main__":
    sys.exit(main())
