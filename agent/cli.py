"""``certplane-agent``: the host agent's command line.

    certplane-agent [--config FILE] [--json] COMMAND
      check-config          validate the configuration and explain every problem
      enroll                create (or find) the ACME account, with the EAB key on first use
      issue [NAME ...]      issue and deploy now (all managed certificates by default)
      renew [NAME ...]      do what is due (ARI, renewal, deployment retries); --force renews now
      run                   the daemon: pass after pass until SIGTERM or SIGINT
      status                managed certificates: state, expiry, next action, last error
      discover              every certificate on this host: files, configurations, ports
      adopt PATH --name N   manage a discovered certificate in place (same names, same files)

Exit status 0 on success, 1 when a step failed or the configuration is wrong, 2 for usage
errors. Nothing from the server ever reaches a shell: hooks and reloads are argv lists.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from certplane.agent.acme_flow import AcmeFailure
from certplane.agent.adopt import AdoptError, certificate_block, plan_adoption
from certplane.agent.config import (
    AgentConfig,
    CertificateSettings,
    ConfigError,
    explain,
    load_config,
)
from certplane.agent.discovery import DiscoveryOptions, discover
from certplane.agent.engine import Agent, Step
from certplane.agent.report import discovered_items
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
    sub.add_parser("discover", help="certificates on this host and where they are served")
    adopt = sub.add_parser("adopt", help="manage a discovered certificate in place")
    adopt.add_argument("path", help="the certificate file the web server is configured with")
    adopt.add_argument("--name", required=True, help="the managed certificate's name")
    how = adopt.add_mutually_exclusive_group(required=True)
    how.add_argument("--webroot", help="answer http-01 with files under this directory")
    how.add_argument("--standalone-port", type=int, help="answer http-01 on this port")
    adopt.add_argument(
        "--reload", action="append", default=[], metavar="ARG",
        help="the reload command, one argument per --reload (no shell)",
    )  # fmt: skip
    adopt.add_argument(
        "--write", action="store_true",
        help="append the entry to the configuration and issue and deploy now",
    )  # fmt: skip
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
    """Managed certificates with their state, then the others found on the host (files and
    configurations; no network probes, so it stays quick)."""
    rows = agent.status()
    managed = {r["fingerprint"] for r in rows if r["fingerprint"]}
    report = discover(_discovery_options(agent.config), probe=None)
    found = [
        {
            "fingerprint": r.certificate.fingerprint,
            "names": [*r.certificate.dns_names, *r.certificate.ip_addresses],
            "not_after": r.certificate.not_after.isoformat(),
            "files": [f.path for f in r.files],
        }
        for r in report.certificates
        if r.certificate.fingerprint not in managed and not r.certificate.is_ca
    ]
    if args.json:
        return json.dumps({"managed": rows, "discovered": found}, indent=2), 0
    header = f"{'NAME':<16} {'STATUS':<20} {'NOT AFTER':<26} {'NEXT':<9} {'WHEN':<26} LAST ERROR"
    lines = [
        f"{r['name']:<16} {r['status']:<20} {r['not_after'] or '-':<26} {r['next']:<9} "
        f"{r['when']:<26} {r['last_error'] or ''}"
        for r in rows
    ]
    if found:
        lines += ["", f"{'UNMANAGED':<33} {'NOT AFTER':<26} FILES"]
        lines += [
            f"{','.join(f['names'])[:32]:<33} {f['not_after']:<26} {', '.join(f['files'])}"
            for f in found
        ]
    return "\n".join([header, *lines]), 0


def cmd_run(agent: Agent, args: argparse.Namespace) -> tuple[str, int]:
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    agent.run(stop)
    return "stopped", 0


def _discovery_options(config: AgentConfig) -> DiscoveryOptions:
    found = config.agent.discovery
    options = DiscoveryOptions()
    if found.cert_paths:
        options = dataclasses.replace(options, certificate_paths=tuple(map(str, found.cert_paths)))
    if found.nginx_conf:
        options = dataclasses.replace(options, nginx_main=str(found.nginx_conf[0]))
    if found.apache_conf:
        options = dataclasses.replace(options, apache_main=str(found.apache_conf[0]))
    return options


def cmd_discover(agent: Agent, args: argparse.Namespace) -> tuple[str, int]:
    report = discover(_discovery_options(agent.config))
    if args.json:
        return report.to_json(), 0
    lines = [f"{'FINGERPRINT':<17} {'NOT AFTER':<26} {'NAMES':<40} WHERE"]
    for record in report.certificates:
        cert = record.certificate
        names = ",".join((*cert.dns_names, *cert.ip_addresses))[:40]
        where = [f.path for f in record.files]
        where += [f"served {s.host}:{s.port} ({s.sni or 'no SNI'})" for s in record.served]
        lines.append(
            f"{cert.fingerprint[:16]:<17} {cert.not_after.isoformat():<26} {names:<40} "
            + "; ".join(where)
        )
    lines += [
        f"finding: {f.code} {f.path or f.file or f.fingerprint or ''} {f.detail}"
        for f in report.findings
    ]
    return "\n".join(lines), 0


def cmd_adopt(agent: Agent, args: argparse.Namespace) -> tuple[str, int]:
    plan = plan_adoption(discover(_discovery_options(agent.config)), args.path, args.name)
    challenge: dict[str, str | int] = {"type": "http-01"}
    if args.webroot:
        challenge |= {"mode": "webroot", "webroot": args.webroot}
    else:
        challenge |= {"mode": "standalone", "port": args.standalone_port}
    block = certificate_block(plan, challenge, args.reload)
    if not args.write:
        return block, 0
    path = Path(args.config)
    path.write_text(path.read_text() + block)
    adopted = Agent(load_config(path))
    settings = next(c for c in adopted.config.certificates if c.name == args.name)
    return _steps_output([adopted.issue(settings)], args.json)


AgentCommand = Callable[[Agent, argparse.Namespace], tuple[str, int]]
COMMANDS: dict[str, AgentCommand] = {
    "enroll": cmd_enroll,
    "issue": cmd_issue,
    "renew": cmd_renew,
    "status": cmd_status,
    "run": cmd_run,
    "discover": cmd_discover,
    "adopt": cmd_adopt,
}


def reporting_agent(config: AgentConfig) -> Agent:
    """The agent, reporting what discovery finds on the host beside what it manages."""
    return Agent(config, discovered=lambda: discovered_items(discover(_discovery_options(config))))


def main(
    argv: Sequence[str] | None = None,
    *,
    agent_factory: Callable[[AgentConfig], Agent] = reporting_agent,
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
            config = load_config(args.config)
            agent = agent_factory(config)
            output, status = COMMANDS[args.command](agent, args)
    except ConfigError as exc:
        print(f"certplane-agent: {args.config}: the configuration is not valid:", file=sys.stderr)
        print(explain(exc.errors), file=sys.stderr)
        return 1
    except (CommandFailed, AdoptError, AcmeFailure, StateError, StoreError, OSError) as exc:
        print(f"certplane-agent: {exc}", file=sys.stderr)
        return 1
    print(output)
    return status


if __name__ == "__main__":
    raise SystemExit(main())
