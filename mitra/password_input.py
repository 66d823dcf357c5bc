"""Passwords for the operator commands, read from a prompt or stdin, never from argv.

A password in argv is visible to every user of the machine (`ps`, /proc) and stays in shell
history; a prompt or a pipe leaves neither.
"""

from __future__ import annotations

import argparse
import getpass
import sys

STDIN_FLAG = "--password-stdin"


class PasswordInputError(Exception):
    """The password could not be read; the message is one line for the operator."""


def add_password_input(parser: argparse.ArgumentParser, refused_flag: str) -> None:
    """`--password-stdin`, and `refused_flag` (the old argv option) kept only to explain itself."""
    parser.add_argument(
        STDIN_FLAG,
        dest="password_stdin",
        action="store_true",
        help="read the password from the first line of stdin (otherwise: prompt for it)",
    )
    parser.add_argument(refused_flag, dest="password_in_argv", help=argparse.SUPPRESS)


def read_password(args: argparse.Namespace, field: str) -> str:
    """The password the operator gave for `field`, from stdin or a prompt on the terminal.

    Only the line break is removed: passwords are used as typed, spaces included.
    """
    if args.password_in_argv is not None:
        raise PasswordInputError(
            "passwords are not taken from the command line (ps and shell history show them);"
            f" pipe it with {STDIN_FLAG} or answer the prompt"
        )
    if args.password_stdin:
        password = sys.stdin.readline().removesuffix("\n").removesuffix("\r")
    elif sys.stdin.isatty():
        password = getpass.getpass(f"{field}: ")
        if getpass.getpass(f"{field} (again): ") != password:
            raise PasswordInputError("the two passwords differ")
    else:
        raise PasswordInputError(f"no terminal to prompt for {field}; pipe it with {STDIN_FLAG}")
    if not password:
        # Said here: the password policy would call it "too short", which hides that nothing
        # was read at all (an empty pipe, a stray Enter).
        raise PasswordInputError(f"{field} is empty")
    return password
