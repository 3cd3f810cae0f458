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


def listing(*, session: Session) -> list[Admin]:
    return list(session.exec(select(Admin).order_by(col(Admin.created_at))).all())


def add(*, session: Session, user_id: int, added_by: int) -> bool:
    """False when the user already is an admin (stored)."""
    if session.get(Admin, user_id) is not None:
        return False
    session.add(Admin(user_id=user_id, added_by=added_by))
    return True


def remove(*, session: Session, user_id: int) -> bool:
    admin = session.get(Admin, user_id)
    if admin is None:
        return False
    session.delete(admin)
    return True
