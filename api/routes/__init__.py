"""One router per resource: sessions and the websocket, conversations, the OpenAI-compatible /v1."""
