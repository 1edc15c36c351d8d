"""Discovery on one host: the collectors run in order, then the join.

1. Web server configurations (nginx, Apache) whose main file exists.
2. Certificate files below the configured paths, then every file the configurations name.
3. Listening sockets from /proc, probed without SNI and with the configured names.
4. :func:`~certplane.agent.discovery.join.build_report`.

Everything host-specific is injectable: the filesystem root, the /proc root and the probe.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from certplane.agent.discovery.apache import DEFAULT_APACHE_MAIN, read_apache_config
from certplane.agent.discovery.certfiles import (
    MAX_FILE_SIZE,
    MAX_FILES,
    CertificateFileScan,
    read_certificate_file,
    scan_certificate_files,
)
from certplane.agent.discovery.hostfs import HostRoot
from certplane.agent.discovery.join import DEFAULT_EXPIRES_SOON, Observations, build_report
from certplane.agent.discovery.matching import sni_plan
from certplane.agent.discovery.model import ServerConfig
from certplane.agent.discovery.nginx import DEFAULT_NGINX_MAIN, read_nginx_config
from certplane.agent.discovery.probe import (
    DEFAULT_CONCURRENCY,
    DEFAULT_TIMEOUT,
    ProbeFunction,
    ProbeRun,
    probe_listeners,
    tls_probe,
)
from certplane.agent.discovery.procnet import ByteOrder, ListenerScan, read_listeners
from certplane.agent.discovery.report import DiscoveryReport

DEFAULT_CERTIFICATE_PATHS = ("/etc/letsencrypt",)


@dataclass(frozen=True)
class DiscoveryOptions:
    """Where to look and how hard. Paths other than the two roots are host paths.

    ``host_root`` is the directory host path ``/`` maps to; ``proc_root`` the procfs to read
    sockets from (None: no socket discovery). A main file set to None skips that server.
    ``proc_byteorder`` defaults to this machine's.
    """

    host_root: Path = Path("/")
    certificate_paths: tuple[str, ...] = DEFAULT_CERTIFICATE_PATHS
    nginx_main: str | None = DEFAULT_NGINX_MAIN
    nginx_prefix: str | None = None
    apache_main: str | None = DEFAULT_APACHE_MAIN
    apache_server_root: str | None = None
    proc_root: Path | None = Path("/proc")
    proc_byteorder: ByteOrder | None = None
    max_file_size: int = MAX_FILE_SIZE
    max_files: int = MAX_FILES
    expires_soon: timedelta = DEFAULT_EXPIRES_SOON
    probe_timeout: float = DEFAULT_TIMEOUT
    probe_concurrency: int = DEFAULT_CONCURRENCY


def discover(
    options: DiscoveryOptions | None = None,
    *,
    probe: ProbeFunction | None = tls_probe,
    now: datetime | None = None,
) -> DiscoveryReport:
    """Discover the certificates of a host. ``probe`` None skips the TLS probes."""
    options = options or DiscoveryOptions()
    host = HostRoot(options.host_root)
    configs = read_configs(host, options)
    scan = scan_certificate_files(
        host,
        options.certificate_paths,
        max_file_size=options.max_file_size,
        max_files=options.max_files,
    )
    referenced, present_keys = read_referenced(host, configs, options.max_file_size)
    listeners = _listeners(options)
    observed = Observations(
        now=now or datetime.now(UTC),
        scan=scan,
        configs=configs,
        referenced=referenced,
        present_keys=present_keys,
        listeners=listeners,
        probes=_probe(listeners, configs, probe, options),
    )
    return build_report(observed, options.expires_soon)


def read_configs(host: HostRoot, options: DiscoveryOptions) -> tuple[ServerConfig, ...]:
    """The configurations of the web servers whose main file exists, nginx first."""
    configs = []
    if options.nginx_main and host.exists(options.nginx_main):
        configs.append(read_nginx_config(host, options.nginx_main, options.nginx_prefix))
    if options.apache_main and host.exists(options.apache_main):
        configs.append(read_apache_config(host, options.apache_main, options.apache_server_root))
    return tuple(configs)


def read_referenced(
    host: HostRoot, configs: tuple[ServerConfig, ...], max_file_size: int
) -> tuple[dict[str, CertificateFileScan], frozenset[str]]:
    """Every certificate and chain file the configurations name, read; and which of the key
    files they name exist (keys are never read)."""
    refs = [ref for c in configs for s in c.servers for ref in s.references if ref.path]
    certificates = {ref.path for ref in refs if ref.role != "key" and ref.path}
    keys = {ref.path for ref in refs if ref.role == "key" and ref.path}
    read = {path: read_certificate_file(host, path, max_file_size) for path in sorted(certificates)}
    return read, frozenset(path for path in keys if host.exists(path))


def _listeners(options: DiscoveryOptions) -> ListenerScan:
    if options.proc_root is None:
        return ListenerScan((), ())
    return read_listeners(options.proc_root, options.proc_byteorder)


def _probe(
    listeners: ListenerScan,
    configs: tuple[ServerConfig, ...],
    probe: ProbeFunction | None,
    options: DiscoveryOptions,
) -> ProbeRun:
    if probe is None:
        return ProbeRun()
    servers = [server for config in configs for server in config.servers]
    return probe_listeners(
        listeners.sockets,
        sni_plan(listeners.sockets, servers),
        probe,
        timeout=options.probe_timeout,
        concurrency=options.probe_concurrency,
    )
