"""The one ordered list of handlers: the rate limit first (its own group), then commands, the
unknown-command catch-all last."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from telegram import Update
from telegram.ext import (
    BaseHandler,
    CallbackQueryHandler,
    ChatMemberHandler,
    CommandHandler,
    MessageHandler,
    TypeHandler,
    filters,
)

from handlers.admins import addadmin, list_admins, removeadmin
from handlers.ask import ask
from handlers.buttons import press
from handlers.chats import membership, migration
from handlers.digest import digest
from handlers.lang import lang
from handlers.opml import exportopml, importopml
from handlers.packs import addsource
from handlers.ratelimit import RateLimit
from handlers.settings import settings
from handlers.sources import (
    interval,
    list_sources,
    pausesource,
    pollnow,
    removesource,
    resumesource,
)
from handlers.start import help_command, plain_text, start, unknown
from handlers.stats import show_stats
from handlers.topics import subscribe, topics, unsubscribe
from handlers.trend import trend
from handlers.why import why_command

READER_COMMANDS = (
    "start", "help", "subscribe", "unsubscribe", "topics", "digest", "lang", "settings",
    "trend", "why", "ask",
)
ADMIN_COMMANDS = (
    "addsource", "sources", "removesource", "pausesource", "resumesource", "interval",
    "pollnow", "importopml", "exportopml", "stats", "admins", "addadmin", "removeadmin",
)

# Commands that wait on a site other than Telegram (a feed's check: up to the fetch timeout on
# each hop) run beside the ordered handling of updates, not in its way.
OUTBOUND = frozenset({"addsource"})

# New messages and channel posts, never edits: an edited "/subscribe" must not run twice.
POSTS = filters.UpdateType.MESSAGE | filters.UpdateType.CHANNEL_POST


def all_handlers(rate_limit: RateLimit) -> dict[int, Sequence[BaseHandler[Any, Any, Any]]]:
    """Group -1 runs before the others and may stop an update there; group 0 answers it.
    `rate_limit` is the one handlers.lanes counts updates with as they arrive."""
    readers = {"start": start, "help": help_command, "subscribe": subscribe,
               "unsubscribe": unsubscribe, "topics": topics, "digest": digest, "lang": lang,
               "settings": settings, "trend": trend, "why": why_command, "ask": ask}
    admins = {"addsource": addsource, "sources": list_sources, "removesource": removesource,
              "pausesource": pausesource, "resumesource": resumesource, "interval": interval,
              "pollnow": pollnow, "stats": show_stats, "admins": list_admins,
              "addadmin": addadmin, "removeadmin": removeadmin, "importopml": importopml,
              "exportopml": exportopml}
    limit: list[BaseHandler[Any, Any, Any]] = [TypeHandler(Update, rate_limit)]
    return {-1: limit, 0: [
        # Chat life events come first: they are not commands and must never be missed.
        ChatMemberHandler(membership, ChatMemberHandler.MY_CHAT_MEMBER),
        MessageHandler(filters.StatusUpdate.MIGRATE, migration),
        *(CommandHandler(name, callback, filters=POSTS) for name, callback in readers.items()),
        *(CommandHandler(name, callback, filters=filters.UpdateType.MESSAGE,
                         block=name not in OUTBOUND) for name, callback in admins.items()),
        CallbackQueryHandler(press),
        # Last: anything that looks like a command and was not handled above; in a private
        # chat, text that is no command (a name to follow, most likely).
        MessageHandler(filters.COMMAND & POSTS, unknown),
        MessageHandler(filters.ChatType.PRIVATE & filters.UpdateType.MESSAGE & filters.TEXT
                       & ~filters.COMMAND, plain_text),
    ]}
