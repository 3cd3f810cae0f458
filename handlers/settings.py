"""/settings: delivery mode, daily digest time, time zone, quiet hours and the weekly brief."""

from __future__ import annotations

import re
from functools import cache
from typing import Any
from zoneinfo import available_timezones

from babel.dates import get_day_names
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update

from handlers.common import (
    Context,
    answer_button,
    argument_text,
    chat_language,
    edit_message,
    refuse_unless_configurable,
    reply,
    services,
    text,
)
from locales import Safe
from news import holding
from news.schedule import weekly_start
from storage import chats
from storage import trend as weekly
from storage import weekly as weekly_brief
from storage.db import database_now, db
from storage.models import Chat

MODES = ("instant", "priority", "digest")
# `/settings weekly mon 09:00`: English day names and abbreviations, or ISO numbers 1-7.
DAYS = {name: number for number, names in enumerate(
    (("mon", "monday"), ("tue", "tues", "tuesday"), ("wed", "wednesday"),
     ("thu", "thur", "thurs", "thursday"), ("fri", "friday"), ("sat", "saturday"),
     ("sun", "sunday")), 1) for name in (*names, str(number))}
_TIME = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


@cache
def _zones() -> dict[str, str]:
    """Every IANA time zone name, by its case-folded form."""
    return {name.casefold(): name for name in available_timezones()}


def time_zone(value: str) -> str | None:
    """The IANA name `value` means in any case (`europe/paris`), or None. Looked up in the
    list of names, never opened as given: a long or `../` name is a file path to ZoneInfo."""
    return _zones().get(value.casefold()) if len(value) <= 64 else None


def _clock(value: str) -> str | None:
    match = _TIME.match(value)
    return f"{int(match[1]):02d}:{match[2]}" if match else None


def screen(context: Context, language: str, chat: Chat) -> tuple[str, InlineKeyboardMarkup]:
    quiet = (f"{chat.quiet_start}–{chat.quiet_end}" if chat.quiet_start and chat.quiet_end
             else text(context, language, "settings.quiet_off"))
    body = text(context, language, "settings.text",
                mode=text(context, language, f"settings.mode.{chat.mode}"),
                time=chat.digest_time, tz=chat.timezone, quiet=quiet)
    buttons = [InlineKeyboardButton(("✓ " if mode == chat.mode else "")
                                    + text(context, language, f"settings.mode.{mode}"),
                                    callback_data=f"mode:{mode}") for mode in MODES]
    state = text(context, language, "settings.trend_on" if chat.weekly_trend
                 else "settings.trend_off")
    body += "\n\n" + text(context, language, "settings.trend", state=state)  # weekly chart
    weekly_state = (text(context, language, "settings.weekly_on", day=day_name(
        chat.weekly_day, language), time=chat.weekly_time) if chat.weekly_brief
        else text(context, language, "settings.trend_off"))
    body += "\n\n" + text(context, language, "settings.weekly", state=weekly_state)
    return body, InlineKeyboardMarkup([[button] for button in buttons])


def day_name(day: int, language: str) -> str:
    """`Monday`, `lundi`, `星期一`: the weekday (1 = Monday) in the chat's language."""
    try:
        return str(get_day_names("wide", locale=language)[(day - 1) % 7])
    except (ValueError, LookupError):
        return str(get_day_names("wide", locale="en")[(day - 1) % 7])


def weekly_fields(words: list[str]) -> tuple[bool, int | None, str | None] | None:
    """`weekly on`, `weekly off`, `weekly mon 09:00` -> (on, day, time) to store; None: not
    understood. A day and time turn it on."""
    if len(words) == 2 and words[1].lower() in ("on", "off"):
        return words[1].lower() == "on", None, None
    if len(words) == 3 and (day := DAYS.get(words[1].lower())) and (clock := _clock(words[2])):
        return True, day, clock
    return None


async def _chat(context: Context, chat_id: int) -> Chat:
    row = await db(services(context).engine, chats.get, chat_id=chat_id)
    assert row is not None, "chat_language() creates the chat first"
    return row


def _parse(words: list[str]) -> tuple[str, dict[str, str | None]] | None:
    """`digest 08:00`, `tz Europe/Paris`, `quiet 22:00-07:00`, `quiet off` -> fields to set."""
    if len(words) != 2:
        return None
    what, value = words[0].lower(), words[1]
    if what == "digest" and (clock := _clock(value)):
        return "settings.done", {"digest_time": clock}
    if what in ("tz", "timezone"):
        zone = time_zone(value)
        return ("settings.done", {"timezone": zone}) if zone else ("settings.bad_tz", {})
    if what == "quiet" and value.lower() == "off":
        return "settings.done", {"quiet_start": None, "quiet_end": None}
    if what == "quiet" and "-" in value:
        start, end = (_clock(part) for part in value.split("-", 1))
        if start and end and start != end:
            return "settings.done", {"quiet_start": start, "quiet_end": end}
    return None


async def settings(update: Update, context: Context) -> None:
    language = await chat_language(update, context)
    chat = update.effective_chat
    assert chat is not None
    words = argument_text(update).split()
    if words:
        if await refuse_unless_configurable(update, context, language, "settings"):
            return
        # The weekly trend chart (/settings trend on|off): its own block, apart from _parse.
        if len(words) == 2 and words[0].lower() == "trend" and words[1].lower() in ("on", "off"):
            await db(services(context).engine, weekly.set_weekly, chat_id=chat.id,
                     on=words[1].lower() == "on")
            words = []
        # The weekly brief (/settings weekly on|off|DAY HH:MM): bad input changes nothing.
        if words and words[0].lower() == "weekly":
            weekly_setting = weekly_fields(words)
            if weekly_setting is None:
                await reply(update, context, language, "settings.bad_weekly")
                return
            on, day, clock = weekly_setting
            engine = services(context).engine
            started = weekly_start(await db(engine, database_now))  # every replica's clock
            await db(engine, weekly_brief.set_weekly, chat_id=chat.id, on=on, started=started,
                     day=day, clock=clock)
            words = []
        parsed = _parse(words) if words else ("settings.done", {})
        if parsed is None:
            await reply(update, context, language, "settings.usage")
            return
        key, fields = parsed
        if fields:
            changes: dict[str, Any] = dict(fields)  # db()'s values, as the setting names
            await db(services(context).engine, holding.update_settings, chat_id=chat.id, **changes)
        if key != "settings.done":
            await reply(update, context, language, key)
            return
    body, markup = screen(context, language, await _chat(context, chat.id))
    await reply(update, context, language, "settings.screen", body=Safe(body), markup=markup)


async def press_mode(update: Update, context: Context, mode: str) -> None:
    language = await chat_language(update, context)
    chat = update.effective_chat
    assert chat is not None
    if mode not in MODES:
        await answer_button(update, context, language, "button.stale")
        return
    await db(services(context).engine, holding.update_settings, chat_id=chat.id, mode=mode)
    body, markup = screen(context, language, await _chat(context, chat.id))
    await answer_button(update, context, language, "settings.done")
    message = update.effective_message
    if message is not None:
        await edit_message(message, body, markup=markup)
