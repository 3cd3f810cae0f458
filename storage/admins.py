"""Bot admins added by command; the ones in ADMIN_IDS are permanent and never stored."""

from __future__ import annotations

from sqlmodel import Session

from storage.models import Admin


def is_admin(*, session: Session, user_id: int, permanent: frozenset[int]) -> bool:
    return user_id in permanent or session.get(Admin, user_id) is not None
