"""Production keys (SPEC §7): one algorithm per key type, key checks at startup, the secret file.

Keys are real RSA-2048 / EC P-256 keys generated here with `cryptography`; servers are real
(in-process on a socket, or `immune-core serve` as a child process) and clients are real.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import re
import stat
import subprocess
import sys
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from jwt.warnings import InsecureKeyLengthWarning

from server.api.security import AUTHORITY
from server.auth import KeyConfigError, TokenAuthority, load_or_create_secret
from server.config import Settings
from tests.conftest import ServerFactory
from tests.support import ROOT, Clients, ServerProcess, connect_error, rest

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def public_pem(key: PrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def private_pem(key: PrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def claims(**extra: Any) -> dict[str, Any]:
    return {"sub": "carol", "roles": ["admin"], "exp": int(time.time()) + 600, **extra}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _signing_input(alg: str) -> str:
    return f"{_b64(json.dumps({'alg': alg, 'typ': 'JWT'}).encode())}.{_b64(json.dumps(claims()).encode())}"


def unsigned() -> str:
    """`alg: none`, no signature."""
    return f"{_signing_input('none')}."


def hs256_keyed_with(pem: str) -> str:
    """Key confusion: HS256 with the public key PEM as the shared secret (built by hand; PyJWT refuses)."""
    signing_input = _signing_input("HS256")
    return f"{signing_input}.{_b64(hmac.new(pem.encode(), signing_input.encode(), hashlib.sha256).digest())}"


def ecdsa_token(key: ec.EllipticCurvePrivateKey, alg: str, digest: hashes.HashAlgorithm) -> str:
    """An ECDSA JWT whose header names `alg` whatever the curve (raw r||s signature, RFC 7518 §3.4)."""
    signing_input = _signing_input(alg)
    r, s = decode_dss_signature(key.sign(signing_input.encode(), ec.ECDSA(digest)))
    size = (key.curve.key_size + 7) // 8
    return f"{signing_input}.{_b64(r.to_bytes(size, 'big') + s.to_bytes(size, 'big'))}"


async def assert_accepted(url: str, token: str, rest_target: Any) -> None:
    async with Clients() as clients:
        rec = await clients.connect(url, auth={"token": token})
        assert rec.of_type("connected")[0]["data"]["user"] == "carol"
    status, _, _ = await rest(rest_target, "GET", "/agents", role=None, headers={"Authorization": f"Bearer {token}"})
    assert status == 200


async def assert_refused(url: str, token: str, rest_target: Any, case: str, accepted_alg: str) -> None:
    error = await connect_error(url, auth={"token": token})
    assert error["code"] == "unauthorized", case
    assert f"accepts {accepted_alg}" in error["message"], (case, error)
    status, problem, response = await rest(
        rest_target, "GET", "/agents", role=None, headers={"Authorization": f"Bearer {token}"}
    )
    assert status == 401 and problem["code"] == "unauthorized", case
    assert "invalid_token" in response.headers["WWW-Authenticate"], case


class _At:
    """Lets `rest()` target a child-process server by URL."""

    def __init__(self, url: str) -> None:
        self.url = url

    def headers(self, role: str = "admin", sub: str = "tester") -> dict[str, str]:
        raise AssertionError("tests here send their own Authorization header")


def clean_env(**extra: str) -> dict[str, str]:
    """The test's environment without any IMMUNE_* setting, plus `extra`."""
    return {**{k: v for k, v in os.environ.items() if not k.startswith("IMMUNE_")}, **extra}


def child_server(data_dir: Path, **env: str) -> ServerProcess:
    """`immune-core serve` with exactly these IMMUNE_* settings (ServerProcess would add a secret)."""
    proc = ServerProcess(data_dir)
    proc.env = clean_env(**env)
    return proc


# --- one algorithm per key type -------------------------------------------------------------


async def test_rsa_public_key_accepts_rs256_and_nothing_else(server_factory: ServerFactory) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = public_pem(key)
    server = await server_factory(jwt_secret=None, jwt_public_key=pem)
    assert server.app[AUTHORITY].algorithms == ["RS256"]
    await assert_accepted(server.url, jwt.encode(claims(), key, algorithm="RS256"), server)
    other_ec = ec.generate_private_key(ec.SECP256R1())
    refused = {
        "alg none": unsigned(),
        "HS256 keyed with the public key PEM": hs256_keyed_with(pem),
        "RS512 with the right key": jwt.encode(claims(), key, algorithm="RS512"),
        "PS256 with the right key": jwt.encode(claims(), key, algorithm="PS256"),
        "ES256 from another key": jwt.encode(claims(), other_ec, algorithm="ES256"),
    }
    for case, token in refused.items():
        await assert_refused(server.url, token, server, case, "RS256")
    assert not (server.settings.data_dir / "jwt_secret").exists(), "a public-key deployment needs no secret"


async def test_ec_p256_public_key_from_the_environment_accepts_es256_only(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = public_pem(key)
    proc = child_server(tmp_path, IMMUNE_JWT_PUBLIC_KEY=pem, IMMUNE_LOG_LEVEL="warning")
    await asyncio.to_thread(proc.start)
    try:
        target = _At(proc.url)
        await assert_accepted(proc.url, jwt.encode(claims(), key, algorithm="ES256"), target)
        # The same raw ECDSA construction with the right name is accepted: the refusals below are about alg.
        await assert_accepted(proc.url, ecdsa_token(key, "ES256", hashes.SHA256()), target)
        rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        refused = {
            "alg none": unsigned(),
            "HS256 keyed with the public key PEM": hs256_keyed_with(pem),
            "ES384 with the right key": ecdsa_token(key, "ES384", hashes.SHA384()),
            "ES512 with the right key": ecdsa_token(key, "ES512", hashes.SHA512()),
            "RS256 from an RSA key": jwt.encode(claims(), rsa_key, algorithm="RS256"),
        }
        for case, token in refused.items():
            await assert_refused(proc.url, token, target, case, "ES256")
    finally:
        await asyncio.to_thread(proc.stop)
    log = (tmp_path / "server.log").read_text()
    assert "Dashboard: http://127.0.0.1:" in log and "#token=" not in log  # cannot mint, says so
    assert not (tmp_path / "jwt_secret").exists()


async def test_shared_secret_accepts_hs256_only(server_factory: ServerFactory) -> None:
    server = await server_factory()
    secret = server.settings.jwt_secret
    assert secret is not None
    await assert_accepted(server.url, jwt.encode(claims(), secret.get_secret_value(), algorithm="HS256"), server)
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with warnings.catch_warnings():  # the right secret is short for HS384/HS512; that is not the point here
        warnings.simplefilter("ignore", InsecureKeyLengthWarning)
        refused = {
            "alg none": unsigned(),
            "HS512 with the right secret": jwt.encode(claims(), secret.get_secret_value(), algorithm="HS512"),
            "HS384 with the right secret": jwt.encode(claims(), secret.get_secret_value(), algorithm="HS384"),
            "RS256 from an RSA key": jwt.encode(claims(), rsa_key, algorithm="RS256"),
        }
    for case, token in refused.items():
        await assert_refused(server.url, token, server, case, "HS256")


def test_the_algorithm_follows_the_key(tmp_path: Path) -> None:
    rsa_pem = public_pem(rsa.generate_private_key(public_exponent=65537, key_size=3072))
    ec_pem = public_pem(ec.generate_private_key(ec.SECP256R1()))
    assert TokenAuthority(Settings(data_dir=tmp_path, jwt_public_key=rsa_pem)).algorithms == ["RS256"]
    assert TokenAuthority(Settings(data_dir=tmp_path, jwt_public_key=ec_pem)).algorithms == ["ES256"]
    assert TokenAuthority(Settings(data_dir=tmp_path, jwt_secret="s" * 32)).algorithms == ["HS256"]


# --- keys refused at startup -----------------------------------------------------------------

WEAK_KEYS: dict[str, tuple[dict[str, str], str]] = {
    "short secret": ({"IMMUNE_JWT_SECRET": "s" * 31}, "IMMUNE_JWT_SECRET is 31 bytes"),
    "RSA 1024": (
        {"IMMUNE_JWT_PUBLIC_KEY": public_pem(rsa.generate_private_key(public_exponent=65537, key_size=1024))},
        "1024-bit RSA key",
    ),
    "EC P-384": ({"IMMUNE_JWT_PUBLIC_KEY": public_pem(ec.generate_private_key(ec.SECP384R1()))}, "secp384r1"),
    "EC secp256k1": ({"IMMUNE_JWT_PUBLIC_KEY": public_pem(ec.generate_private_key(ec.SECP256K1()))}, "secp256k1"),
    "garbage PEM": (
        {"IMMUNE_JWT_PUBLIC_KEY": "-----BEGIN PUBLIC KEY-----\nbm90IGEga2V5\n-----END PUBLIC KEY-----\n"},
        "not a PEM public key",
    ),
    "private key given as the public key": (
        {"IMMUNE_JWT_PUBLIC_KEY": private_pem(ec.generate_private_key(ec.SECP256R1()))},
        "holds a private key",
    ),
}


def run_serve(data_dir: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    port = "1"  # never bound: every case must fail before listening
    return subprocess.run(
        [sys.executable, "-m", "server.cli", "serve", "--data-dir", str(data_dir), "--port", port],
        cwd=ROOT,
        env=clean_env(**env),
        capture_output=True,
        text=True,
        timeout=30,
    )


def assert_one_line_refusal(result: subprocess.CompletedProcess[str], expected: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0].startswith("immune-core: error: ") and expected in lines[0], lines[0]
    assert "Dashboard" not in result.stdout


@pytest.mark.parametrize("case", list(WEAK_KEYS))
def test_unusable_key_refuses_to_start_with_one_line(tmp_path: Path, case: str) -> None:
    env, expected = WEAK_KEYS[case]
    assert_one_line_refusal(run_serve(tmp_path, env), expected)


@pytest.mark.parametrize("content", ["", "\n", "too-short-secret"])
def test_empty_or_short_secret_file_is_refused(tmp_path: Path, content: str) -> None:
    secret_file = tmp_path / "jwt_secret"
    secret_file.write_text(content)
    secret_file.chmod(0o600)
    assert_one_line_refusal(run_serve(tmp_path, {}), "delete the file to generate a new one")
    assert secret_file.read_text() == content, "the refused file is left for the operator to inspect"


def test_key_config_error_in_process(tmp_path: Path) -> None:
    with pytest.raises(KeyConfigError, match="at least 32"):
        TokenAuthority(Settings(data_dir=tmp_path, jwt_secret="short"))
    with pytest.raises(KeyConfigError, match="2048"):
        TokenAuthority(
            Settings(
                data_dir=tmp_path,
                jwt_public_key=public_pem(rsa.generate_private_key(public_exponent=65537, key_size=1024)),
            )
        )


# --- the generated secret file ---------------------------------------------------------------


def dashboard_token(log: Path) -> str:
    match = re.search(r"#token=([\w.-]+)", log.read_text())
    assert match, log.read_text()
    return match.group(1)


async def test_first_run_secret_is_0600_and_a_permissive_one_is_tightened(tmp_path: Path) -> None:
    secret_file = tmp_path / "jwt_secret"
    old_umask = os.umask(0)  # the child inherits it: the mode must not come from the umask
    try:
        proc = child_server(tmp_path, IMMUNE_LOG_LEVEL="warning")
        await asyncio.to_thread(proc.start)
    finally:
        os.umask(old_umask)
    try:
        assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
        assert sorted(p.name for p in os.scandir(tmp_path) if "jwt_secret" in p.name) == ["jwt_secret"]
        first_token = dashboard_token(tmp_path / "server.log")
        await assert_accepted_admin(proc.url, first_token)
    finally:
        await asyncio.to_thread(proc.stop)
    secret = secret_file.read_text()
    assert len(secret.strip()) >= 32

    secret_file.chmod(0o644)
    (tmp_path / "server.log").unlink()
    proc = child_server(tmp_path, IMMUNE_LOG_LEVEL="warning")
    await asyncio.to_thread(proc.start)
    try:
        assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
        await assert_accepted_admin(proc.url, first_token)  # same secret, kept
    finally:
        await asyncio.to_thread(proc.stop)
    assert secret_file.read_text() == secret
    warnings = [
        json.loads(line)
        for line in (tmp_path / "server.log").read_text().splitlines()
        if line.startswith("{") and "jwt_secret_permissions_tightened" in line
    ]
    assert len(warnings) == 1, (tmp_path / "server.log").read_text()
    assert warnings[0]["level"] == "warning" and warnings[0]["old_mode"] == "0644"
    assert secret.strip() not in (tmp_path / "server.log").read_text()


async def assert_accepted_admin(url: str, token: str) -> None:
    async with Clients() as clients:
        rec = await clients.connect(url, auth={"token": token})
        assert rec.of_type("connected")[0]["data"]["user"] == "admin"
    status, _, _ = await rest(
        _At(url), "GET", "/ws/connections", role=None, headers={"Authorization": f"Bearer {token}"}
    )
    assert status == 200


def test_token_command_tightens_quietly_and_prints_only_the_token(tmp_path: Path) -> None:
    secret_file = tmp_path / "jwt_secret"
    secret_file.write_text("g" * 40)
    secret_file.chmod(0o640)
    minted = subprocess.run(
        [sys.executable, "-m", "server.cli", "token", "--sub", "dave", "--data-dir", str(tmp_path)],
        cwd=ROOT,
        env=clean_env(),
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    assert jwt.decode(minted.stdout.strip(), "g" * 40, algorithms=["HS256"])["sub"] == "dave"
    assert "jwt_secret_permissions_tightened" in minted.stderr


def test_token_command_on_a_public_key_deployment_says_why(tmp_path: Path) -> None:
    pem = public_pem(ec.generate_private_key(ec.SECP256R1()))
    result = subprocess.run(
        [sys.executable, "-m", "server.cli", "token", "--sub", "dave", "--data-dir", str(tmp_path)],
        cwd=ROOT,
        env=clean_env(IMMUNE_JWT_PUBLIC_KEY=pem),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert_one_line_refusal(result, "verifies ES256 tokens")


def test_concurrent_first_starts_share_one_secret(tmp_path: Path) -> None:
    barrier = threading.Barrier(8)

    def first_start() -> str:
        barrier.wait()
        return load_or_create_secret(tmp_path)

    with ThreadPoolExecutor(8) as pool:
        secrets_seen = set(pool.map(lambda _: first_start(), range(8)))
    assert len(secrets_seen) == 1
    assert (tmp_path / "jwt_secret").read_text() == secrets_seen.pop()
    assert stat.S_IMODE((tmp_path / "jwt_secret").stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["jwt_secret"], "no temporary file is left behind"


def test_unreadable_secret_file_is_a_one_line_refusal(tmp_path: Path) -> None:
    (tmp_path / "jwt_secret").mkdir()
    assert_one_line_refusal(run_serve(tmp_path, {}), "cannot read the JWT secret file")
