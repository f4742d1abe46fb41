"""The one exception type users see for bad input."""


class InputError(ValueError):
    """Bad user input: the message names the file, the record or line, what is wrong and what to do."""

    def __init__(self, path, problem: str, fix: str, where: str | None = None):
        self.path, self.problem, self.fix, self.where = str(path), problem, fix, where
        loc = f"{path}" + (f", {where}" if where else "")
        super().__init__(f"{loc}: {problem}. {fix}")
