"""The one error a turn raises: ``ChatError``, whose text is a sentence for the user."""

from __future__ import annotations


class ChatError(Exception):
    """A reply could not be produced; ``str(error)`` is a sentence for the user.

    Attributes:
        can_fall_back: True when answering with the local model instead is worth offering
            (a remote provider failed with a connection error or a server error).
        refused_text: the user's text when it was refused before being sent (too long, a file that
            cannot be read), so the caller can give it back; None otherwise (the text is then kept
            in the conversation).
        web_failed: True when the web search before the answer failed (answering without the web
            is worth offering).
    """

    def __init__(
        self, message: str, can_fall_back: bool = False, refused_text: str | None = None, web_failed: bool = False
    ) -> None:
        super().__init__(message)
        self.can_fall_back = can_fall_back
        self.refused_text = refused_text
        self.web_failed = web_failed
