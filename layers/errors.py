"""The one root of superposim's errors. Everything a user's input, files or machine can cause
derives from it, so the command catches one class and prints one line; anything else is a bug
and keeps its traceback."""


class SuperposimError(Exception):
    """An error the user can act on: reported as one line naming the item, exit code 2."""
