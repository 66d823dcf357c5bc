"""The in-conversation assistant: intents, answers from the asker's own data and the knowledge
base, an LLM fallback, and the hand-off to the agent."""

from mitra.assistant.kb import Article, KnowledgeBase
from mitra.assistant.llm import LlmFallback, TokenBudget
from mitra.assistant.metrics import AssistantMetrics
from mitra.assistant.service import (
    AGENT,
    BOT,
    AssistantService,
    CallbackView,
    ConversationContext,
)

__all__ = [
    "AGENT",
    "BOT",
    "Article",
    "AssistantMetrics",
    "AssistantService",
    "CallbackView",
    "ConversationContext",
    "KnowledgeBase",
    "LlmFallback",
    "TokenBudget",
]
