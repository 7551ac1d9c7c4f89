"""``python -m model.assign_owner OWNER`` (``make assign-owner OWNER=<e-mail or subject>``): give what
was kept before accounts were turned on (the local owner's conversations, the images and
recordings they use, and the settings) to someone who has signed in.

The person must have signed in once, so that their subject (the id their data is kept under) is
known from their e-mail. Each conversation is copied to them and checked before it is removed from
the local owner; a name they already use keeps both, the copy as ``"<name> (imported)"``. Running it
again moves what the local owner has gained since (nothing, when nothing has). The store is the one
CONVERSATIONS_URL (or CONVERSATIONS_FILE) names.
"""

from __future__ import annotations

import argparse
import sys

from model.attachments import referenced
from model.store import LOCAL_OWNER, AccountRecord, BaseConversationStore, StoreError
from model.stores import open_store


def find_account(store: BaseConversationStore, who: str) -> AccountRecord:
    """The signed-in person ``who`` names: their subject, or their e-mail ignoring case.

    Raises:
        StoreError: no one signed in under that subject or e-mail, or several people share the e-mail.
    """
    accounts = store.accounts()
    by_subject = [a for a in accounts if a.subject == who]
    found = by_subject or [a for a in accounts if a.email and a.email.casefold() == who.strip().casefold()]
    if not found:
        raise StoreError(f"No one has signed in as {who!r} yet: sign in to Parley once as them, then run this again.")
    if len(found) > 1:
        subjects = ", ".join(a.subject for a in found)
        raise StoreError(f"Several accounts have the e-mail {who!r} (subjects {subjects}); name one by its subject.")
    return found[0]


def assign_owner(store: BaseConversationStore, who: str) -> tuple[AccountRecord, list[str]]:
    """Move the local owner's conversations, their attachments and the settings to ``who``.

    Args:
        store: any owner's store (its backend is used; the local owner's part is read).
        who: the new owner's subject or e-mail (``find_account``).

    Returns:
        the new owner, and the names their copies were saved under, in order.

    Raises:
        StoreError: ``who`` is not known, a read or write failed, or a copy differs from its original
            (then nothing of that conversation was removed from the local owner).
    """
    account = find_account(store, who)
    local, target = store.owned_by(LOCAL_OWNER), store.owned_by(account.subject)
    conversations = local.load_all()
    for digest in sorted(referenced(m.to_dict() for messages in conversations.values() for m in messages)):
        blob = local.attachment(digest)
        if blob is not None:
            target.put_attachment(blob.data, blob.mime)
    saved = target.import_conversations(conversations, replace=False)
    for (name, messages), copy in zip(conversations.items(), saved, strict=True):
        if target.get(copy) != messages:
            raise StoreError(f"The copy of {name!r} differs from it; {name!r} was kept where it was.")
    settings = local.preferences()
    if settings and not target.preferences():
        target.save_preferences(settings)
    for name in conversations:
        local.delete(name)
    return account, saved


def main(argv: list[str] | None = None) -> int:
    """The command line; returns the exit code (1 on a failure, with its sentence on stderr; 2 for bad
    arguments)."""
    from settings import load_settings

    parser = argparse.ArgumentParser(prog="python -m model.assign_owner", description=__doc__)
    parser.add_argument("owner", help="the e-mail (or provider subject) of someone who has signed in")
    args = parser.parse_args(argv)
    if not args.owner.strip():
        parser.error("name the new owner: make assign-owner OWNER=<e-mail>")
    try:
        store = open_store(load_settings().conversations_location)
        try:
            account, saved = assign_owner(store, args.owner)
        finally:
            store.close()
    except StoreError as exc:
        print(f"Assigning failed: {exc}", file=sys.stderr)
        return 1
    print(f"Gave {len(saved)} conversation(s) to {account.email or account.subject} (subject {account.subject}).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
