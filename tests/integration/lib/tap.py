"""tap.py: the "ok - PREFIX: NAME" / "not ok - PREFIX: NAME" lines that
tests/run.sh counts, for the Python integration tests (imported, not run)."""
import sys
import traceback


class Tap:
    def __init__(self, prefix):
        self.prefix = prefix
        self.passed = self.failed = 0

    def check(self, name, cond, info=None):
        """One check; info (when given) is printed under a failure."""
        if cond:
            self.passed += 1
            print(f"ok - {self.prefix}: {name}")
        else:
            self.failed += 1
            print(f"not ok - {self.prefix}: {name}")
            if info is not None and info != "":
                print(f"#   {str(info)[:600]}")
        return bool(cond)

    def skip(self, why):
        print(f"# SKIP {self.prefix}: {why}")
        sys.exit(0)

    def run(self, main, cleanup):
        """main(), a crash of which is a failure (not a silent pass), then
        cleanup(); exits 1 if any check failed."""
        try:
            main()
        except Exception as ex:
            traceback.print_exc()
            self.check("test ran to the end", False, f"{type(ex).__name__}: {ex}")
        finally:
            cleanup()
        sys.exit(0 if self.failed == 0 else 1)
