#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-or-later
"""Fernet interoperability helper for the C++ tests, backed by python3-cryptography.

  fernet_interop.py encrypt KEY_B64 PLAINTEXT_HEX   prints the token
  fernet_interop.py decrypt KEY_B64 TOKEN           prints the plaintext as hex;
                                                    exits 1 with "invalid" on InvalidToken
Usage errors exit 2.
"""
import sys

from cryptography.fernet import Fernet, InvalidToken


def main(argv):
    if len(argv) != 4 or argv[1] not in ("encrypt", "decrypt"):
        print(__doc__, file=sys.stderr)
        return 2
    command, key, arg = argv[1], argv[2], argv[3]
    try:
        f = Fernet(key.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        print("bad key", file=sys.stderr)
        return 2
    if command == "encrypt":
        try:
            plaintext = bytes.fromhex(arg)
        except ValueError:
            print("bad plaintext hex", file=sys.stderr)
            return 2
        print(f.encrypt(plaintext).decode("ascii"))
        return 0
    try:
        # No TTL: the tests check the cryptography, not the clock.
        plaintext = f.decrypt(arg.encode("ascii"))
    except (InvalidToken, UnicodeEncodeError):
        print("invalid")
        return 1
    print(plaintext.hex())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
