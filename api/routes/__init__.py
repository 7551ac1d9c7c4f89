"""One router per resource: chat tokens, the websocket, conversations, the OpenAI-compatible /v1."""
