"""One error type for everything a user can fix: a one-line message naming the problem and the fix."""


class SenError(Exception):
    """A problem the user can fix. str() is one line: what went wrong, then what to do."""

    def __init__(self, problem: str, fix: str = ""):
        self.problem = problem
        self.fix = fix
        super().__init__(f"{problem} — {fix}" if fix else problem)
