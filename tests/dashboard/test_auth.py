"""The login gate's password hashing: salted scrypt, self-describing, constant-time check."""

from __future__ import annotations

import pytest

from dashboard import auth


def test_a_hash_accepts_its_password_and_nothing_else():
    stored = auth.hash_password("correct horse battery staple")
    assert auth.verify_password("correct horse battery staple", stored)
    assert not auth.verify_password("correct horse battery stapl", stored)
    assert not auth.verify_password("", stored)


def test_the_format_carries_its_parameters_and_a_fresh_salt():
    first = auth.hash_password("correct horse battery staple")
    second = auth.hash_password("correct horse battery staple")
    assert first != second  # salted
    name, n, r, p, *_ = first.split("$")
    assert (name, int(n), int(r), int(p)) == ("scrypt", auth.N, auth.R, auth.P)
    parsed = auth.parse_hash(first)
    assert len(parsed.salt) == auth.SALT_BYTES and len(parsed.key) == auth.KEY_BYTES


def test_cheaper_parameters_in_an_old_hash_still_verify():
    stored = auth.hash_password("another password", n=2**10, r=4, p=1)
    assert stored.startswith("scrypt$1024$4$1$")
    assert auth.verify_password("another password", stored)


def test_short_passwords_are_refused():
    with pytest.raises(ValueError, match="at least 8 characters"):
        auth.hash_password("short")


@pytest.mark.parametrize(
    "stored",
    [
        "plain-text-password",
        "pbkdf2$1000$abc$def",
        "scrypt$16384$8$1$not base64!$AAAA",
        "scrypt$1000$8$1$c2FsdHNhbHQ=$" + "A" * 44,  # n not a power of two
        "scrypt$4194304$8$1$c2FsdHNhbHQ=$" + "A" * 44,  # n far too large: refused, not run
        "scrypt$16384$8$1$c2FsdHNhbHQ=$AAAA",  # a 3-byte key
    ],
)
def test_a_malformed_configured_hash_is_a_configuration_error(stored):
    with pytest.raises(auth.PasswordHashError):
        auth.verify_password("whatever password", stored)


def test_the_environment_wins_over_streamlit_secrets():
    env = {auth.ENV_VAR: " scrypt$from-env "}
    secrets = {auth.SECRET_NAME: "scrypt$from-secrets"}
    assert auth.configured_hash(env, secrets) == "scrypt$from-env"
    assert auth.configured_hash({}, secrets) == "scrypt$from-secrets"
    assert auth.configured_hash({auth.ENV_VAR: "  "}, {}) is None
    assert auth.configured_hash({}, None) is None
