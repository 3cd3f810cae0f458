"""/start, /help and the answer to commands we do not know."""

from __future__ import annotations

from telegram import Update

from handlers.common import Context, chat_language, is_admin, reply, text
from handlers.packs import start_offer
from locales import Safe
from news.text import excerpt


async def start(update: Update, context: Context) -> None:
    """For an admin of a bot with no feeds, the welcome offers the starter packs too."""
    language = await chat_language(update, context)
    offer, markup = await start_offer(update, context, language)
    if not offer:
        await reply(update, context, language, "start.welcome")
        return
    message = update.effective_message
    assert message is not None
    await message.reply_text(text(context, language, "start.welcome") + "\n\n" + offer,
                             reply_markup=markup)


async def help_command(update: Update, context: Context) -> None:
    """Admin commands are listed to admins only, as the command menu shows them."""
    language = await chat_language(update, context)
    admin = ("\n\n" + text(context, language, "help.admin")
             if await is_admin(update, context) else "")
    await reply(update, context, language, "help.text", admin=Safe(admin))


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
    await reply(update, context, await chat_language(update, context), "unknown.command")


async def plain_text(update: Update, context: Context) -> None:
    """A reader who types a name in a private chat, not a command, is shown how to follow it
    (never silence)."""
    message = update.effective_message
    if message is None or not (message.text or "").strip():
        return
    await reply(update, context, await chat_language(update, context), "plain.suggest",
                query=excerpt(message.text or "", 60))
