"""The domain steps of SPEC §2; nothing here knows about Telegram updates."""
