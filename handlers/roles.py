"""Roles (user < moderator < admin): checked against the database, granted from the CLI."""

from __future__ import annotations

from typing import Literal

from handlers.context import Context
from handlers.errors import CommandError
from storage import roles as role_store
from storage import users as user_store
from storage.db import Database
from storage.users import User

Role = Literal["user", "moderator", "admin"]
ROLES: tuple[Role, ...] = ("user", "moderator", "admin")


def role_rank(role: str) -> int:
    """The role's place in ROLES; -1 for a name that is not a role."""
    for rank, name in enumerate(ROLES):
        if name == role:
            return rank
    return -1


async def require_role(ctx: Context, role: Role) -> User:
    """The caller, if their role is `role` or higher; forbidden otherwise.

    The dispatcher calls this for every command that declares a role. Read from the database
    on each call: admin commands are rare, and a role claim in an access token would outlive
    a demotion by the token's lifetime.
    """
    user = await user_store.get_user(ctx.services.db, ctx.user.user_id)
    if user is None or role_rank(user.role) < role_rank(role):
        raise CommandError("forbidden", f"this needs the {role} role", {"required_role": role})
    return user


class UnknownUser(Exception):
    """No live account has that username."""


async def grant_role(db: Database, username: str, role: Role) -> tuple[User, str]:
    """Set a user's role; returns the updated user and the role it had before."""
    user = await user_store.get_user_by_username(db, username)
    if user is None:
        raise UnknownUser(username)
    await role_store.set_role(db, user.id, role)
    updated = await user_store.get_user(db, user.id)
    assert updated is not None
    return updated, user.role
