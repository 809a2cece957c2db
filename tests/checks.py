"""The pass/fail counter of the Python test drivers: every failed check prints one line, the
summary is "N passed, M failed", and the driver's exit status is non-zero when any check failed."""


class Checks:
    def __init__(self, prefix="FAIL: "):
        self.passed = self.failed = 0
        self.prefix = prefix

    def __call__(self, cond, what):
        if cond:
            self.passed += 1
        else:
            self.failed += 1
            print(self.prefix + what, flush=True)
        return cond

    def summary(self):
        """Prints the counts; returns the exit status."""
        print("%d passed, %d failed" % (self.passed, self.failed))
        return 1 if self.failed else 0
