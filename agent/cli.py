"""``certplane-agent``: the host agent's command line.

    certplane-agent [--config FILE] [--json] COMMAND
      check-config          validate the configuration and explain every problem
      enroll                create (or find) the ACME account, with the EAB key on first use
      issue [NAME ...]      issue and deploy now (all managed certificates by default)
      renew [NAME ...]      do what is due (ARI, renewal, deployment retries); --force renews now
      run                   the daemon: pass after pass until SIGTERM or SIGINT
      status                managed certificates: state, expiry, next action, last error

Exit status 0 on success, 1 when a step failed or the configuration is wrong, 2 for usage
errors. Nothing from the server ever reaches a shell: hooks and reloads are argv lists.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence

from certplane.agent.acme_flow import AcmeFailure
from certplane.agent.config import (
    AgentConfig,
    CertificateSettings,
    ConfigError,
    explain,
    load_config,
)
from certplane.agent.engine import Agent, Step
from certplane.agent.state import StateError
from certplane.agent.store import StoreError

DEFAULT_CONFIG = "/etc/certplane/agent.toml"
CONFIG_ENV = "CERTPLANE_AGENT_CONFIG"


class CommandFailed(Exception):
    """A command could not do its work; the message says why."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="certplane-agent", description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=os.environ.get(CONFIG_ENV, DEFAULT_CONFIG))
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every step")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("check-config", help="validate the configuration")
    sub.add_parser("enroll", help="create or find the ACME account")
    issue = sub.add_parser("issue", help="issue and deploy now")
    issue.add_argument(
        "names", nargs="*", metavar="NAME", help="managed certificates (default: all)"
    )
    renew = sub.add_parser("renew", help="do what is due; --force renews now")
    renew.add_argument("names", nargs="*", metavar="NAME")
    renew.add_argument("--force", action="store_true", help="renew now, whatever the schedule")
    sub.add_parser("run", help="run as a daemon")
    sub.add_parser("status", help="managed certificates and their state")
    return parser


def _selected(config: AgentConfig, names: Sequence[str]) -> list[CertificateSettings]:
    known = {c.name: c for c in config.certificates}
    unknown = [n for n in names if n not in known]
    if unknown:
        listed = ", ".join(known) or "none"
        raise CommandFailed(f"no managed certificate named {', '.join(unknown)} (known: {listed})")
    return [known[n] for n in names] if names else list(config.certificates)


def _steps_output(steps: Sequence[Step], as_json: bool) -> tuple[str, int]:
    failed = any(not s.ok for s in steps)
    if as_json:
        rows = [{"name": s.name, "action": s.action, "ok": s.ok, "detail": s.detail} for s in steps]
        return json.dumps(rows, indent=2), int(failed)
    lines = [f"{s.name}: {s.action} {'ok' if s.ok else 'FAILED'}: {s.detail}" for s in steps]
    return "\n".join(lines) or "nothing to do", int(failed)


def cmd_check_config(args: argparse.Namespace) -> tuple[str, int]:
    config = load_config(args.config)
    names = ", ".join(c.name for c in config.certificates) or "none"
    if args.json:
        return json.dumps({"valid": True, "certificates": [c.name for c in config.certificates]}), 0
    return f"{args.config}: valid; managed certificates: {names}", 0


def cmd_enroll(agent: Agent, args: argparse.Namespace) -> tuple[str, int]:
    url = agent.enroll()
    return (json.dumps({"account": url}) if args.json else f"account: {url}"), 0


def cmd_issue(agent: Agent, args: argparse.Namespace) -> tuple[str, int]:
    steps = [agent.issue(settings) for settings in _selected(agent.config, args.names)]
    return _steps_output(steps, args.json)


def cmd_renew(agent: Agent, args: argparse.Namespace) -> tuple[str, int]:
    selected = _selected(agent.config, args.names)
    if args.force:
        steps = [agent.renew_now(settings) for settings in selected]
    else:
        wanted = {s.name for s in selected}
        steps = [step for step in agent.tick() if step.name in wanted]
    return _steps_output(steps, args.json)


def cmd_status(agent: Agent, args: argparse.Namespace) -> tuple[str, int]:
    rows = agent.status()
    if args.json:
        return json.dumps(rows, indent=2), 0
    header = f"{'NAME':<16} {'STATUS':<20} {'NOT AFTER':<26} {'NEXT':<9} {'WHEN':<26} LAST ERROR"
    lines = [
        f"{r['name']:<16} {r['status']:<20} {r['not_after'] or '-':<26} {r['next']:<9} "
        f"{r['when']:<26} {r['last_error'] or ''}"
        for r in rows
    ]
    return "\n".join([header, *lines]), 0


def cmd_run(agent: Agent, args: argparse.Namespace) -> tuple[str, int]:
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    agent.run(stop)
    return "stopped", 0


AgentCommand = Callable[[Agent, argparse.Namespace], tuple[str, int]]
COMMANDS: dict[str, AgentCommand] = {
    "enroll": cmd_enroll,
    "issue": cmd_issue,
    "renew": cmd_renew,
    "status": cmd_status,
    "run": cmd_run,
}


def main(
    argv: Sequence[str] | None = None, *, agent_factory: Callable[[AgentConfig], Agent] = Agent
) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose or args.command == "run" else logging.WARNING,
        format="%(asctime)s %(levelname)s %(message)s",
    )
    try:
        if args.command == "check-config":
            output, status = cmd_check_config(args)
        else:
            agent = agent_factory(load_config(args.config))
            output, status = COMMANDS[args.command](agent, args)
    except ConfigError as exc:
        print(f"certplane-agent: {args.config}: the configuration is not valid:", file=sys.stderr)
        print(explain(exc.errors), file=sys.stderr)
        return 1
    except (CommandFailed, AcmeFailure, StateError, StoreError, OSError) as exc:
        print(f"certplane-agent: {exc}", file=sys.stderr)
        return 1
    print(output)
    return status


if __name__ == "__main__":
    raise SystemExit(main())
