"""Assistants: wires view.assistants (named helpers with their own instructions, model and tools)."""

from view.assistants import render

render()
