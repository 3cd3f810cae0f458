"""/start, /help and the answer to commands we do not know."""

from __future__ import annotations

from telegram import Update

from handlers.common import Context, chat_language, reply


async def start(update: Update, context: Context) -> None:
    await reply(update, context, chat_language(update, context), "start.welcome")


async def help_command(update: Update, context: Context) -> None:
    await reply(update, context, chat_language(update, context), "help.text")


async def unknown(update: Update, context: Context) -> None:
    """Never silence: an unknown command points to /help.

    In groups only commands addressed to this bot by name get the pointer, so other bots'
    commands are not answered.
    """
    chat, message = update.effective_chat, update.effective_message
    if chat is None or message is None:
        return
    command = (message.text or "").split()[0] if message.text else ""
    if chat.type != "private" and f"@{context.bot.username}".lower() not in command.lower():
        return
    await reply(update, context, chat_language(update, context), "unknown.command")
