"""Users and their tokens: fastapi-users on SQLite, with scopes in the JWTs it issues.

``DATABASE_URL`` picks the database (``sqlite+aiosqlite:///./example.db`` by default, created on
startup). ``AUTH_SECRET`` signs the tokens; the default is for trying the example on one
machine only. ``TOKEN_LIFETIME`` is the tokens' lifetime in seconds (one hour by default):
streams opened with a token end when it expires.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

from fastapi import Depends
from fastapi_users import BaseUserManager, FastAPIUsers, UUIDIDMixin, schemas
from fastapi_users.authentication import AuthenticationBackend, BearerTransport
from fastapi_users_db_sqlalchemy import SQLAlchemyBaseUserTableUUID, SQLAlchemyUserDatabase
from sqlalchemy import String
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from fastapi_streaming.security.users import FastAPIUsersAuthorizer, scoped_jwt_strategy

DATABASE_URL = os.environ.get("DATABASE_URL", "sqlite+aiosqlite:///./example.db")
SECRET = os.environ.get("AUTH_SECRET", "example-only-secret-set-AUTH_SECRET-in-production")
TOKEN_LIFETIME = int(os.environ.get("TOKEN_LIFETIME", "3600"))

#: Every scope of the example's topics. A real app grants them per user (an admin screen, a
#: plan); here every new user gets all three, so the quick start works end to end.
SCOPES = {
    "stocks:read": "Receive live stock quotes.",
    "orders:read": "Follow the order book.",
    "orders:write": "Place orders.",
}
DEFAULT_SCOPES = " ".join(SCOPES)


class Base(DeclarativeBase):
    pass


class User(SQLAlchemyBaseUserTableUUID, Base):
    #: The scopes granted to the user, space-separated; tokens carry these (or fewer).
    scopes: Mapped[str] = mapped_column(String(1024), default=DEFAULT_SCOPES)


class UserRead(schemas.BaseUser[uuid.UUID]):
    scopes: str


class UserCreate(schemas.BaseUserCreate):
    """What /auth/register accepts: no scopes, so nobody grants themselves any."""


engine = create_async_engine(DATABASE_URL)
sessions = async_sessionmaker(engine, expire_on_commit=False)


async def create_db_and_tables() -> None:
    try:
        async with engine.begin() as connection:
            await connection.run_sync(Base.metadata.create_all)
    except OperationalError as exc:  # another worker created them first
        if "already exists" not in str(exc):
            raise


async def get_async_session() -> AsyncIterator[AsyncSession]:
    async with sessions() as session:
        yield session


async def get_user_db(
    session: AsyncSession = Depends(get_async_session),
) -> AsyncIterator[SQLAlchemyUserDatabase[User, uuid.UUID]]:
    yield SQLAlchemyUserDatabase(session, User)


class UserManager(UUIDIDMixin, BaseUserManager[User, uuid.UUID]):
    reset_password_token_secret = SECRET
    verification_token_secret = SECRET


async def get_user_manager(
    user_db: SQLAlchemyUserDatabase[User, uuid.UUID] = Depends(get_user_db),
) -> AsyncIterator[UserManager]:
    yield UserManager(user_db)


bearer_transport = BearerTransport(tokenUrl="/auth/jwt/login")
# fastapi-users' JWT strategy, with the user's scopes (narrowed to the login form's `scope`
# field, when it names some) in the token's `scope` claim.
auth_backend = AuthenticationBackend(
    name="jwt",
    transport=bearer_transport,
    get_strategy=scoped_jwt_strategy(SECRET, lifetime_seconds=TOKEN_LIFETIME),
)
fastapi_users = FastAPIUsers[User, uuid.UUID](get_user_manager, [auth_backend])

#: What the streaming API accepts: these very tokens, for users that still exist and are active,
#: with only the scopes the user still has (a revoked scope is refused on the next connection).
authorizer = FastAPIUsersAuthorizer(
    fastapi_users, auth_backend, scopes="scopes", token_url="/auth/jwt/login"
)
