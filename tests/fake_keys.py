"""Made-up API keys for tests, built at run time so that no key-shaped string is committed.

Groq keys start with "gsk" + "_" and OpenAI keys with "sk" + "-"; these only look like them.
"""

GROQ = "gs" + "k_"
OPENAI = "s" + "k-"


def fake(prefix: str, body: str) -> str:
    """A fake key: ``prefix`` + ``body`` (``body`` says it is fake)."""
    return prefix + body
