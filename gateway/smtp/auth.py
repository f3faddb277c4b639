"""Checking SMTP AUTH credentials against `users` holding the `submit` role.

`store.users.authenticate` reads the row and runs scrypt in a thread, so a login never
stalls the other SMTP sessions; an unknown name costs the same as a wrong password.
"""

from __future__ import annotations

from store.db import Database
from store.users import authenticate

ROLE = "submit"


class SubmitAuthenticator:
    def __init__(self, db: Database, role: str = ROLE) -> None:
        self.db = db
        self.role = role

    async def verify(self, name: str, password: str) -> bool:
        """True when the password is right, the account active and the role held."""
        async with self.db.sessions() as s:
            return await authenticate(s, name, password, self.role) is not None
