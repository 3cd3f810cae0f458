"""Bot admins added by command; the ones in ADMIN_IDS are permanent and never stored."""

from __future__ import annotations

from sqlmodel import Session, col, select

from storage.models import Admin, Chat


def is_admin(*, session: Session, user_id: int, permanent: frozenset[int]) -> bool:
    return user_id in permanent or session.get(Admin, user_id) is not None


def languages(*, session: Session, permanent: frozenset[int], default: str) -> dict[int, str]:
    """Every admin's private chat id with the language that chat reads."""
    ids = set(permanent) | set(session.exec(select(Admin.user_id)).all())
    chosen = dict(session.exec(select(Chat.id, Chat.language).where(col(Chat.id).in_(ids))).all())
    return {user_id: chosen.get(user_id, default) for user_id in sorted(ids)}
