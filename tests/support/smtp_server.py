"""A real SMTP server for tests: aiosmtpd, optional STARTTLS or implicit TLS, optional AUTH.

Each message is written atomically to MAILDIR/NNNNNN.eml (raw RFC 5322 bytes as received).
Run with Debian's /usr/bin/python3 (package python3-aiosmtpd).
"""
import argparse
import asyncio
import itertools
import os
import ssl

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

counter = itertools.count(1)


class SaveHandler:
    def __init__(self, maildir):
        self.maildir = maildir

    async def handle_DATA(self, server, session, envelope):
        n = next(counter)
        tmp = os.path.join(self.maildir, f"{n:06d}.tmp")
        with open(tmp, "wb") as f:
            f.write(envelope.original_content or envelope.content)
        os.rename(tmp, os.path.join(self.maildir, f"{n:06d}.eml"))
        return "250 OK"


class Authenticator:
    def __init__(self, user, password):
        self.user = user.encode()
        self.password = password.encode()

    def __call__(self, server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == self.user
            and auth_data.password == self.password
        )
        return AuthResult(success=ok)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--maildir", required=True)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--tls", choices=["none", "starttls", "implicit"], default="none")
    ap.add_argument("--auth", default=None, help="user:password required for AUTH")
    args = ap.parse_args()

    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(args.cert, args.key)
    handler = SaveHandler(args.maildir)
    kwargs = {}
    if args.auth:
        user, password = args.auth.split(":", 1)
        kwargs.update(
            authenticator=Authenticator(user, password),
            auth_required=True,
            # Implicit TLS is TLS from the first byte; aiosmtpd only counts STARTTLS as TLS.
            auth_require_tls=args.tls == "starttls",
        )
    if args.tls == "starttls":
        kwargs.update(tls_context=ctx, require_starttls=True)

    def factory():
        return SMTP(handler, hostname="localhost", **kwargs)

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    server = loop.run_until_complete(
        loop.create_server(
            factory,
            host="127.0.0.1",
            port=args.port,
            ssl=ctx if args.tls == "implicit" else None,
        )
    )
    try:
        loop.run_forever()
    finally:
        server.close()


if __name__ == "__main__":
    main()
