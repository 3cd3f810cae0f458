"""The one ordered list of handlers: commands first, the unknown-command catch-all last."""

from __future__ import annotations

from typing import Any

from telegram.ext import BaseHandler, CommandHandler, MessageHandler, filters

from handlers.lang import lang
from handlers.sources import addsource, list_sources, removesource
from handlers.start import help_command, start, unknown
from handlers.stats import show_stats
from handlers.topics import subscribe, topics, unsubscribe

READER_COMMANDS = ("start", "help", "subscribe", "unsubscribe", "topics", "lang")
ADMIN_COMMANDS = ("addsource", "sources", "removesource", "stats")


def all_handlers() -> list[BaseHandler[Any, Any, Any]]:
    return [
        CommandHandler("start", start),
        CommandHandler("help", help_command),
        CommandHandler("subscribe", subscribe),
        CommandHandler("unsubscribe", unsubscribe),
        CommandHandler("topics", topics),
        CommandHandler("lang", lang),
        CommandHandler("addsource", addsource),
        CommandHandler("sources", list_sources),
        CommandHandler("removesource", removesource),
        CommandHandler("stats", show_stats),
        # Last: anything that looks like a command and was not handled above.
        MessageHandler(filters.COMMAND, unknown),
    ]
