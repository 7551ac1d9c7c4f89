"""Chatbot With Memory: wires view.chatbot_with_memory to controller.engines.AgentEngine."""

from controller.engines import AgentEngine
from view.chatbot_with_memory import render

render(engine=AgentEngine)
