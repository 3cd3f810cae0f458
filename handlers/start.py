"""/start, /help and the answer to commands we do not know."""

from __future__ import annotations

from telegram import Update

from handlers.common import Context, chat_language, reply


async def start(update: Update, context: Context) -> None:
    await reply(update, context, chat_language(update, context), "start.welcome")


async def help_command(update: Update, context: Context) -> None:
    await reply(update, context, chat_language(update, context), "help.text")


async def unknown(update: Update, context: Context) -> None:
    """Never silence: an unknown command points to /help."""
    await reply(update, context, chat_language(update, context), "unknown.command")
