"""Adapters to the outside world: the LLM providers and the local model server."""
