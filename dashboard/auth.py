"""The dashboard's login gate: one shared password, stored only as a salted scrypt hash.

The hash comes from ``UNLEARNREC_DASHBOARD_PASSWORD_HASH`` or the Streamlit secret
``password_hash``; ``unlearnrec dashboard-password`` makes one. There is no default password: with
no hash configured the app shows nothing. Format (all parameters travel with the hash, so they can
be raised later without invalidating old hashes)::

    scrypt$<n>$<r>$<p>$<salt, base64>$<derived key, base64>

Standard library only (this module is imported by the CLI, which must start fast).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

ENV_VAR = "UNLEARNREC_DASHBOARD_PASSWORD_HASH"
SECRET_NAME = "password_hash"
MIN_PASSWORD_CHARS = 8

# scrypt cost: n=2^14, r=8 needs 16 MiB and about 50 ms per check on one core (OWASP's minimum
# is n=2^17 at r=8 p=1 for stored user passwords; one shared operator password behind a gate
# that also rate-limits is a different threat, and the app must stay responsive on 2 cores).
N, R, P = 2**14, 8, 1
SALT_BYTES = 16
KEY_BYTES = 32
# What a configured hash may ask for: refuse absurd parameters instead of burning memory.
_MAX_N, _MAX_R, _MAX_P = 2**20, 32, 16


class PasswordHashError(ValueError):
    """The configured hash is not in the ``scrypt$n$r$p$salt$hash`` format (or asks too much)."""


@dataclass(frozen=True)
class ScryptHash:
    n: int
    r: int
    p: int
    salt: bytes
    key: bytes

    def encode(self) -> str:
        b64 = lambda b: base64.b64encode(b).decode("ascii")  # noqa: E731
        return f"scrypt${self.n}${self.r}${self.p}${b64(self.salt)}${b64(self.key)}"


def _derive(password: str, salt: bytes, n: int, r: int, p: int, length: int) -> bytes:
    # maxmem: scrypt needs 128*r*n*p bytes (plus a little); OpenSSL's default cap is 32 MiB.
    return hashlib.scrypt(
        password.encode("utf-8"),
        salt=salt,
        n=n,
        r=r,
        p=p,
        dklen=length,
        maxmem=128 * r * n * p + (1 << 20) + 128 * r * p,
    )


def hash_password(password: str, *, n: int = N, r: int = R, p: int = P) -> str:
    """A new salted hash of ``password`` (a fresh random salt each call)."""
    if len(password) < MIN_PASSWORD_CHARS:
        raise ValueError(f"the password needs at least {MIN_PASSWORD_CHARS} characters")
    salt = secrets.token_bytes(SALT_BYTES)
    return ScryptHash(n, r, p, salt, _derive(password, salt, n, r, p, KEY_BYTES)).encode()


def parse_hash(stored: str) -> ScryptHash:
    """Read a stored hash; ``PasswordHashError`` says what is wrong with it (never its value)."""
    parts = stored.strip().split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        raise PasswordHashError(
            "the password hash is not of the form scrypt$n$r$p$salt$hash "
            "(make one with `unlearnrec dashboard-password`)"
        )
    try:
        n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
        salt = base64.b64decode(parts[4], validate=True)
        key = base64.b64decode(parts[5], validate=True)
    except (ValueError, binascii.Error) as exc:
        raise PasswordHashError(f"the password hash has a malformed field ({exc})") from exc
    if not (2 <= n <= _MAX_N and n & (n - 1) == 0 and 1 <= r <= _MAX_R and 1 <= p <= _MAX_P):
        raise PasswordHashError(
            f"the password hash asks for scrypt parameters outside the accepted range "
            f"(n a power of two up to {_MAX_N}, r up to {_MAX_R}, p up to {_MAX_P})"
        )
    if len(salt) < 8 or not 16 <= len(key) <= 64:
        raise PasswordHashError("the password hash has a salt or key of an unexpected length")
    return ScryptHash(n, r, p, salt, key)


def verify_password(password: str, stored: str) -> bool:
    """True when ``password`` matches ``stored``; the comparison takes constant time.

    Raises ``PasswordHashError`` for a malformed ``stored`` hash (a configuration error that the
    operator must see, not a wrong password)."""
    h = parse_hash(stored)
    candidate = _derive(password, h.salt, h.n, h.r, h.p, len(h.key))
    return hmac.compare_digest(candidate, h.key)


def configured_hash(
    environ: Mapping[str, str] | None = None, secrets_: Mapping[str, Any] | None = None
) -> str | None:
    """The password hash in force: the environment variable first, then the Streamlit secret."""
    environ = os.environ if environ is None else environ
    value = (environ.get(ENV_VAR) or "").strip()
    if value:
        return value
    if secrets_ is not None:
        secret = secrets_.get(SECRET_NAME)
        if isinstance(secret, str) and secret.strip():
            return secret.strip()
    return None


# -- guessing ----------------------------------------------------------------------------------


@dataclass
class _Strikes:
    failures: list[float] = field(default_factory=list)  # times of recent wrong passwords
    locks: int = 0  # lockouts so far: each one lasts twice as long as the one before
    locked_until: float = 0.0


class LoginThrottle:
    """Wrong-password lockout keyed by client address and account, held by the server process
    (not by the browser session, which a reload replaces).

    ``max_failures`` wrong passwords within ``window`` seconds lock the key for ``base_lock``
    seconds, doubling with each further lockout up to ``max_lock``; a right password clears
    the key. Every login counts against two keys: the client's (address, account) and the
    account as a whole, which has a higher limit (``account_max_failures``) so guesses spread
    over many addresses are slowed too. While a key is locked the password is not even checked.
    """

    def __init__(
        self,
        *,
        max_failures: int = 5,
        account_max_failures: int = 20,
        window: float = 300.0,
        base_lock: float = 30.0,
        max_lock: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.max_failures = max_failures
        self.account_max_failures = account_max_failures
        self.window = window
        self.base_lock = base_lock
        self.max_lock = max_lock
        self.clock = clock
        self._keys: dict[str, _Strikes] = {}
        self._lock = threading.Lock()

    @staticmethod
    def keys(address: str | None, account: str) -> tuple[str, str]:
        return f"client:{address or 'local'}|{account}", f"account:{account}"

    def retry_after(self, address: str | None, account: str) -> float:
        """Seconds until this client may try ``account`` again (0: now)."""
        now = self.clock()
        with self._lock:
            waits = [self._keys[k].locked_until - now for k in self.keys(address, account)
                     if k in self._keys]  # fmt: skip
        return max([0.0, *waits])

    def failure(self, address: str | None, account: str) -> float:
        """Record a wrong password; returns the lockout it started (0: none)."""
        now = self.clock()
        started = 0.0
        client_key, account_key = self.keys(address, account)
        with self._lock:
            for key, limit in ((client_key, self.max_failures),
                               (account_key, self.account_max_failures)):  # fmt: skip
                strikes = self._keys.setdefault(key, _Strikes())
                strikes.failures = [t for t in strikes.failures if now - t < self.window]
                strikes.failures.append(now)
                if len(strikes.failures) >= limit:
                    duration = min(self.base_lock * 2**strikes.locks, self.max_lock)
                    strikes.locks += 1
                    strikes.locked_until = now + duration
                    strikes.failures.clear()
                    started = max(started, duration)
        return started

    def success(self, address: str | None, account: str) -> None:
        """A right password: this client's record is cleared (the account's stays: a guesser
        elsewhere is not forgiven because the officer logged in)."""
        with self._lock:
            self._keys.pop(self.keys(address, account)[0], None)

    def reset(self) -> None:
        with self._lock:
            self._keys.clear()


# One per server process: every browser session of this dashboard shares it.
THROTTLE = LoginThrottle()
ACCOUNT = "officer"  # the one shared account the password opens
