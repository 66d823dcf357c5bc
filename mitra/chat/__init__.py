"""Chat: conversations and their members, message history, and the group-committing writer."""

from mitra.chat.conversations import (
    ConversationQuery,
    ConversationService,
    ConversationState,
    ConversationSummary,
    StoredMessage,
)
from mitra.chat.limits import ChatLimits
from mitra.chat.writer import MessageRefused, MessageWriter, PendingMessage, WriteRejected

__all__ = [
    "ChatLimits",
    "ConversationQuery",
    "ConversationService",
    "ConversationState",
    "ConversationSummary",
    "MessageRefused",
    "MessageWriter",
    "PendingMessage",
    "StoredMessage",
    "WriteRejected",
]
