"""Versions of a message: a regenerated reply, or an edited user message that starts a new branch.

As ChatGPT does, each version of a message carries its own continuation. The chosen version
and what follows it are the conversation's plain messages (what older readers of
conversations.json see). The other versions are kept on the chosen message under ``versions``:
each a branch, the other version of the message followed by what came after it then.
``version_index`` is the chosen version's 0-based place among all of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from model.message import Message

Branch = tuple[Message, ...]


def version_count(message: Message) -> int:
    """How many versions ``message`` has, counting itself (1 when it was never regenerated or edited)."""
    return len(message.versions) + 1


def all_branches(messages: Sequence[Message], index: int) -> list[Branch]:
    """Every version of ``messages[index]`` as a branch, in version order.

    Args:
        messages: the conversation (the chosen branch).
        index: position of the message whose versions are wanted.

    Returns:
        ``version_count`` branches; the one at ``messages[index].version_index`` is the current
        message (without its versions) and everything after it.

    Raises:
        IndexError: ``index`` is not a position in ``messages``.
    """
    message = messages[index]
    current = (message.bare(), *messages[index + 1 :])
    others = list(message.versions)
    return [*others[: message.version_index], current, *others[message.version_index :]]


def choose_version(messages: Sequence[Message], index: int, choice: int) -> list[Message]:
    """The conversation with version ``choice`` (0-based) of ``messages[index]`` chosen.

    The messages before ``index`` are kept; the chosen branch's messages follow them, and the
    branch left becomes one of the versions.

    Raises:
        IndexError: ``index`` or ``choice`` is out of range.
    """
    branches = all_branches(messages, index)
    if not 0 <= choice < len(branches):
        raise IndexError(f"message {index} has {len(branches)} versions, not {choice + 1}")
    chosen = branches[choice]
    first = replace(chosen[0], versions=tuple(b for i, b in enumerate(branches) if i != choice), version_index=choice)
    return [*messages[:index], first, *chosen[1:]]


def add_version(messages: Sequence[Message], index: int, old_branch: Sequence[Message]) -> list[Message]:
    """The conversation with ``messages[index]`` as a new, last version beside ``old_branch``.

    Args:
        messages: the conversation, whose message at ``index`` is the new version (a regenerated
            reply, or the edited user message) and has no versions of its own.
        index: where the new version is.
        old_branch: what the conversation held from ``index`` on before: its first message is the
            version that was chosen, and carries the older versions.

    Raises:
        IndexError: ``index`` is not a position in ``messages``, or ``old_branch`` is empty.
    """
    if not old_branch:
        raise IndexError("an empty branch has no version to keep")
    earlier = all_branches(old_branch, 0)
    new = replace(messages[index], versions=tuple(earlier), version_index=len(earlier))
    return [*messages[:index], new, *messages[index + 1 :]]
