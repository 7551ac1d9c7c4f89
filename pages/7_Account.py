"""Account: wires view.account (the signed-in person's API keys for the chat server)."""

from view.account import render

render()
