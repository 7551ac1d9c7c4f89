"""Simple Chat: wires view.simple_chat to controller.simple_chat."""

from controller.simple_chat import SimpleChat
from view.simple_chat import render

render(make_chat=SimpleChat)
