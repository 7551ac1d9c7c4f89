"""Chatbot With Memory: wires view.chatbot_with_memory to controller.chatbot_with_memory."""

from controller.chatbot_with_memory import MemoryChat
from view.chatbot_with_memory import render

render(make_chat=MemoryChat)
