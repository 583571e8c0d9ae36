"""What scripts/api-fuzz needs before schemathesis runs, made through the API itself.

    python3 api_fuzz_sessions.py BASE_URL USER PASSWORD OPERATOR OPERATOR_PASSWORD

Signs USER in to registration and registers an authenticator app for them, does the same for
OPERATOR and signs them in to the helpdesk with a code of that app, and starts a reset flow for USER (a real flow, not a decoy, as USER is now
registered). Prints user_token=, operator_token= and flow= lines. Standard library only.
"""

import base64
import hashlib
import hmac
import json
import os
import struct
import sys
import time
import urllib.request


def call(base, path, body, token=None, method="POST"):
    headers = {"Content-Type": "application/json"} if body is not None else {}
    if token:
        headers["Authorization"] = "Bearer " + token
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base + path, data, headers, method=method)
    with urllib.request.urlopen(request, timeout=10) as answer:
        raw = answer.read()
    return json.loads(raw) if raw else None


def totp(secret_base32, unix_secs):
    """RFC 6238: SHA-1, 30 s steps, 6 digits, as the service's authenticator apps."""
    key = base64.b32decode(secret_base32 + "=" * (-len(secret_base32) % 8))
    mac = hmac.new(key, struct.pack(">Q", unix_secs // 30), hashlib.sha1).digest()
    offset = mac[-1] & 15
    value = struct.unpack(">I", mac[offset : offset + 4])[0] & 0x7FFFFFFF
    return "%06d" % (value % 10**6)


def remember(kind, value):
    """Lists a secret for scripts/check-secrets, as tests/it/harness.rs does (under scripts/test)."""
    path = os.environ.get("SSPR_TEST_SECRETS_FILE")
    if path and value:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"kind": kind, "value": value}) + "\n")


def settled_now():
    """Now, at least 3 s before the next step, so the codes computed from it stay valid."""
    while int(time.time()) % 30 >= 27:
        time.sleep(0.5)
    return int(time.time())


def register_totp(base, username, password):
    """Signs in to registration and registers an authenticator app; returns the session token,
    the secret and the code that confirmed it."""
    session = call(base, "/api/v1/enrollment/session", {"username": username, "password": password})
    token = session["token"]
    # Only this session may change methods without a step-up: it registers the first one (and
    # proves it by confirming it). Any later session would get 403 step_up_required on every
    # changing call, so the fuzzer would reach none of their logic.
    if session["step_up_required"]:
        sys.exit(f"the first registration session of {username} asks for a step-up")
    secret = call(base, "/api/v1/enrollment/totp", {}, token)["secret"]
    # The previous step's code (inside the ±1 step window), so the current step stays unspent.
    code = totp(secret, settled_now() - 30)
    call(base, "/api/v1/enrollment/totp/confirm", {"code": code}, token)
    if call(base, "/api/v1/enrollment", None, token, "GET")["step_up_required"]:
        sys.exit("the session that registered the authenticator app lost the right to change it")
    return token, secret, code


def main():
    base, user, password, operator, operator_password = sys.argv[1:]
    token, secret, code = register_totp(base, user, password)
    # Operators sign in with their own authenticator app (helpdesk.operator_second_factor).
    operator_enrollment, operator_secret, operator_confirm = register_totp(
        base, operator, operator_password
    )
    operator_code = totp(operator_secret, settled_now())
    operator_token = call(
        base,
        "/api/v1/helpdesk/session",
        {"username": operator, "password": operator_password, "code": operator_code},
    )["token"]
    flow = call(base, "/api/v1/reset", {"username": user})["flow"]
    for kind, value in [
        ("password", password),
        ("password", operator_password),
        ("session-token", token),
        ("totp-secret", secret),
        ("code", code),
        ("session-token", operator_enrollment),
        ("totp-secret", operator_secret),
        ("code", operator_confirm),
        ("code", operator_code),
        ("session-token", operator_token),
        ("flow-id", flow),
    ]:
        remember(kind, value)
    print(f"user_token={token}\noperator_token={operator_token}\nflow={flow}")


if __name__ == "__main__":
    main()
