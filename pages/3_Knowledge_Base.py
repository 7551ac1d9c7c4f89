"""Knowledge Base: wires view.knowledge_base to controller.engines.KnowledgeEngine."""

from controller.engines import KnowledgeEngine
from view.knowledge_base import render

render(engine=KnowledgeEngine)
