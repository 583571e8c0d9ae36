"""The end-to-end check of scripts/test-containers, from the host against the Compose demo.

    python3 container_e2e.py --api URL --ldaps URL --ca FILE --user NAME --password PW \
        --mail-container NAME

USER (a demo user with a mail address, in a domain nobody has registered in yet) registers an
authenticator app through the published API port, then resets the password with a code of that
app. Proven on the real parts: the new password binds over LDAPS to the DC container's
published port and the old one is refused (an ldapsearch bind, verified against the demo CA), and the
mail sink container holds the mail that told USER of the reset. Standard library and
ldap-utils only; prints one line per step; exits non-zero at the first step that fails.
"""

import argparse
import email
import io
import os
import secrets
import subprocess
import sys
import tarfile
import time
import urllib.error

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from api_fuzz_sessions import call, register_totp, settled_now, totp  # noqa: E402


def step(what):
    print(f"    {what}", file=sys.stderr, flush=True)


def fail(what):
    sys.exit(f"end-to-end check failed: {what}")


def binds(ldaps, ca, user, password):
    """Whether USER binds with PASSWORD over LDAPS (a simple bind by the UPN)."""
    env = dict(os.environ, LDAPTLS_CACERT=ca, LDAPTLS_REQCERT="demand")
    answer = subprocess.run(
        # A bind and a search of the root DSE (Samba has no "Who am I?" operation).
        ["ldapsearch", "-H", ldaps, "-x", "-D", f"{user}@sspr.test", "-y", "/dev/stdin",
         "-b", "", "-s", "base", "dn"],
        input=password.encode(),
        env=env,
        capture_output=True,
        timeout=20,
    )
    if answer.returncode == 0:
        return True
    text = answer.stderr.decode(errors="replace")
    if "Invalid credentials" in text:
        return False
    fail(f"ldapsearch against {ldaps} failed for another reason: {text.strip()}")


def mails(container):
    """(recipients, subject) of every message in the sink's Maildir (copied out as a tar)."""
    copied = subprocess.run(
        ["podman", "cp", f"{container}:/var/mail/sink/new", "-"],
        capture_output=True,
        timeout=20,
        check=True,
    )
    found = []
    with tarfile.open(fileobj=io.BytesIO(copied.stdout)) as archive:
        for member in archive.getmembers():
            if member.isfile():
                message = email.message_from_bytes(archive.extractfile(member).read())
                found.append((str(message["To"]), str(message["Subject"])))
    return found


def main():
    parser = argparse.ArgumentParser()
    for option in ("--api", "--ldaps", "--ca", "--user", "--password", "--mail-container"):
        parser.add_argument(option, required=True)
    args = parser.parse_args()

    if not binds(args.ldaps, args.ca, args.user, args.password):
        fail(f"{args.user} does not bind with the demo password before the reset")
    step(f"LDAPS bind to {args.ldaps} as {args.user} with the demo password: OK")

    try:
        _, secret, _ = register_totp(args.api, args.user, args.password)
        step("authenticator app registered through the API")
        flow = call(args.api, "/api/v1/reset", {"username": args.user})
        if "totp" not in flow["methods"]:
            fail(f"the reset flow offers {flow['methods']}, not totp")
        flow_id = flow["flow"]
        verified = call(
            args.api,
            f"/api/v1/reset/{flow_id}/verify",
            {"method": "totp", "code": totp(secret, settled_now())},
        )
        if not verified.get("verified") or verified.get("remaining"):
            fail(f"the code did not verify the flow: {verified}")
        step("reset flow verified with a code of the app")
        new_password = f"Box-{secrets.token_hex(6)}-Reset9!"
        call(args.api, f"/api/v1/reset/{flow_id}/password", {"new_password": new_password})
        step("new password set through the API")
    except urllib.error.HTTPError as e:
        fail(f"{e.method} {e.url}: HTTP {e.code}: {e.read().decode(errors='replace')}")

    if not binds(args.ldaps, args.ca, args.user, new_password):
        fail("the new password does not bind over LDAPS")
    if binds(args.ldaps, args.ca, args.user, args.password):
        fail("the old password still binds over LDAPS")
    step("LDAPS: the new password binds, the old one is refused")

    # The outbox sends it a moment later, not inside the request.
    address = f"{args.user}@sspr.test"
    notice = "Your password was reset"
    deadline = time.monotonic() + 30
    while not any(address in to and subject == notice for to, subject in mails(args.mail_container)):
        if time.monotonic() > deadline:
            fail(f"no mail {notice!r} to {address} in the sink within 30 s: {mails(args.mail_container)}")
        time.sleep(0.5)
    step(f"the sink holds the mail {notice!r} to {address}")

if __name__ == "__main__":
    main()
