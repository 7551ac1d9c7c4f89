"""Simple Chat: wires view.simple_chat to controller.engines.PlainEngine."""

from controller.engines import PlainEngine
from view.simple_chat import render

render(engine=PlainEngine)
