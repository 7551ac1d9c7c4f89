"""Knowledge Base: wires view.knowledge_base to controller.knowledge_base."""

from controller.knowledge_base import KnowledgeChat
from view.knowledge_base import render

render(make_chat=KnowledgeChat)
