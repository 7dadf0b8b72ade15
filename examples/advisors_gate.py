"""A CI gate on Supabase's advisors: print the findings at a level or above, exit 1 if any.

    export SUPABASE_DB_URL=postgresql://postgres:postgres@127.0.0.1:54322/postgres
    python examples/advisors_gate.py            # ERROR findings fail the build
    python examples/advisors_gate.py warn       # WARN and ERROR findings fail it

The same check as `appkit db advisors --level warn --fail-on warn`, from Python.
"""

from __future__ import annotations

import os
import sys

from appkit.db.advisors import Level, fails, run_advisors


def main(argv: list[str]) -> int:
    level = Level.parse(argv[1] if len(argv) > 1 else "error")
    findings = run_advisors(os.environ["SUPABASE_DB_URL"], min_level=level)
    for f in findings:
        print(f"{f.level.value:5} {f.name}: {f.detail}\n      fix: {f.lint.remediation}")
    print(f"{len(findings)} finding(s) at {level.value} or above")
    return 1 if fails(findings, level) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
