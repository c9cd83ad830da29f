"""``python -m deploy_gate``: the same command line as the ``deploy-gate`` console script."""

from __future__ import annotations

from deploy_gate.cli import main

if __name__ == "__main__":
    raise SystemExit(main(prog="python -m deploy_gate"))
