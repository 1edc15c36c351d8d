"""Certificate discovery on a host: files, web server configurations and served certificates.

:func:`discover` runs every collector and joins what they saw into a :class:`DiscoveryReport`:
each certificate (by SHA-256 fingerprint) with the files holding it, the nginx and Apache
directives naming it, the ports serving it, and findings such as ``configured-but-not-served``
or ``expires-soon``. The collectors are usable on their own and take injectable roots, so the
whole pipeline runs against a fixture tree and a fake ``/proc``.
"""

from certplane.agent.discovery.apache import DEFAULT_APACHE_MAIN, read_apache_config
from certplane.agent.discovery.certfiles import (
    CertificateFileScan,
    describe_certificate,
    key_type,
    parse_certificate_bytes,
    read_certificate_file,
    scan_certificate_files,
    weak_key_reason,
)
from certplane.agent.discovery.configtree import Directive
from certplane.agent.discovery.discover import (
    DEFAULT_CERTIFICATE_PATHS,
    DiscoveryOptions,
    discover,
)
from certplane.agent.discovery.hostfs import HostRoot
from certplane.agent.discovery.join import Observations, build_report, certificate_findings
from certplane.agent.discovery.model import (
    CertificateInfo,
    CertReference,
    FoundCertificate,
    ListenAddress,
    ListeningSocket,
    ParseError,
    ProbeOutcome,
    ProbeResult,
    ProbeStatus,
    ProbeTarget,
    ServerConfig,
    SkippedFile,
    SkipReason,
    VirtualServer,
)
from certplane.agent.discovery.nginx import DEFAULT_NGINX_MAIN, read_nginx_config
from certplane.agent.discovery.probe import (
    ProbeFunction,
    ProbeRun,
    probe_all,
    probe_host,
    probe_listeners,
    tls_probe,
)
from certplane.agent.discovery.procnet import ListenerScan, parse_proc_net_tcp, read_listeners
from certplane.agent.discovery.report import (
    CertificateRecord,
    ConfiguredAt,
    DiscoveryReport,
    FileLocation,
    Finding,
    FindingCode,
    ServedAt,
)

__all__ = [
    "DEFAULT_APACHE_MAIN",
    "DEFAULT_CERTIFICATE_PATHS",
    "DEFAULT_NGINX_MAIN",
    "CertReference",
    "CertificateFileScan",
    "CertificateInfo",
    "CertificateRecord",
    "ConfiguredAt",
    "Directive",
    "DiscoveryOptions",
    "DiscoveryReport",
    "FileLocation",
    "Finding",
    "FindingCode",
    "FoundCertificate",
    "HostRoot",
    "ListenAddress",
    "ListenerScan",
    "ListeningSocket",
    "Observations",
    "ParseError",
    "ProbeFunction",
    "ProbeOutcome",
    "ProbeResult",
    "ProbeRun",
    "ProbeStatus",
    "ProbeTarget",
    "ServedAt",
    "ServerConfig",
    "SkipReason",
    "SkippedFile",
    "VirtualServer",
    "build_report",
    "certificate_findings",
    "describe_certificate",
    "discover",
    "key_type",
    "parse_certificate_bytes",
    "parse_proc_net_tcp",
    "probe_all",
    "probe_host",
    "probe_listeners",
    "read_apache_config",
    "read_certificate_file",
    "read_listeners",
    "read_nginx_config",
    "scan_certificate_files",
    "tls_probe",
    "weak_key_reason",
]
