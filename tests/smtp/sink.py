"""A real SMTP server on loopback for the e-mail tests (aiosmtpd, Debian's
python3-aiosmtpd): STARTTLS required, AUTH LOGIN/PLAIN over TLS only,
every accepted message stored as it arrived (NNN.eml) and as Python's
own MIME parser reads it (NNN.json: recipients, decoded headers, the
text and HTML parts). Recipients listed in the file `refuse` (one per
line, read at every RCPT) are refused with 550, as a server refuses an
unknown mailbox.

usage: sink.py DIR PORT CERT KEY USER PASSWORD
"""

import email
import email.policy
import json
import os
import ssl
import sys
import time

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

directory, port, cert, key, user, password = sys.argv[1:7]


class Sink:
    def __init__(self):
        self.count = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        refuse_file = os.path.join(directory, "refuse")
        refused = []
        if os.path.exists(refuse_file):
            with open(refuse_file, encoding="utf-8") as f:
                refused = [line.strip() for line in f if line.strip()]
        if address in refused:
            return "550 5.1.1 <%s>: mailbox unavailable" % address
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        base = os.path.join(directory, "%03d" % self.count)
        with open(base + ".eml", "wb") as f:
            f.write(envelope.original_content)
        message = email.message_from_bytes(
            envelope.original_content, policy=email.policy.default
        )
        parts = {}
        for part in message.walk():
            if part.get_content_maintype() == "text":
                parts[part.get_content_type()] = part.get_content()
        decoded = {
            "envelope_to": envelope.rcpt_tos,
            "to": str(message["To"]),
            "from": str(message["From"]),
            "reply_to": str(message["Reply-To"] or ""),
            "subject": str(message["Subject"]),
            "text": parts.get("text/plain", ""),
            "html": parts.get("text/html", ""),
        }
        with open(base + ".json.tmp", "w", encoding="utf-8") as f:
            json.dump(decoded, f, ensure_ascii=False)
        os.rename(base + ".json.tmp", base + ".json")
        return "250 Message accepted for delivery"


def authenticate(server, session, envelope, mechanism, auth_data):
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login.decode() == user
        and auth_data.password.decode() == password
    )
    # handled=False: aiosmtpd then answers a failure with 535 itself.
    return AuthResult(success=ok, handled=False)


context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
context.load_cert_chain(cert, key)
controller = Controller(
    Sink(),
    hostname="127.0.0.1",
    port=int(port),
    tls_context=context,
    require_starttls=True,
    authenticator=authenticate,
    auth_required=True,
    auth_require_tls=True,
)
controller.start()
with open(os.path.join(directory, "ready"), "w") as f:
    f.write("ready\n")
try:
    while True:
        time.sleep(3600)
finally:
    controller.stop()
