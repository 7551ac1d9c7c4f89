"""Model workers (``python -m worker``, ``make worker``): answer the chat server's queued turns
from the Redis Stream ``parley:turns`` (see ``controller.queue``)."""
