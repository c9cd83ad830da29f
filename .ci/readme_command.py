"""Print the N-th command of the README's opening block, so CI runs exactly what users read.

The README starts with one ```bash block holding two commands, one per line: 1 runs the gate on
example_project/, 2 runs the test suite. ``--install-only`` prints the install part (up to the
first ``&&`` that follows ``pip install``).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path


def main() -> None:
    number = int(sys.argv[1])
    text = Path(__file__).resolve().parent.parent.joinpath("README.md").read_text()
    block = re.search(r"```bash\n(.*?)```", text, re.S)
    if block is None:
        sys.exit("README.md has no ```bash block")
    commands = [line for line in block.group(1).splitlines() if line and not line.startswith("#")]
    if len(commands) != 2:
        sys.exit(f"README.md's first block must hold exactly 2 commands, found {len(commands)}")
    command = commands[number - 1]
    if "--install-only" in sys.argv:
        command = command.split(" && ")[0]
    print(command)


if __name__ == "__main__":
    main()
