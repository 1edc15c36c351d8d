"""Apache httpd: logical lines, words, sections, includes and virtual hosts."""

from __future__ import annotations

from pathlib import Path

import pytest

from certplane.agent.discovery import HostRoot, read_apache_config
from certplane.agent.discovery.apache import split_address
from certplane.agent.discovery.apache_syntax import logical_lines, parse, split_words
from certplane.agent.discovery.configtree import ConfigSyntaxError, Directive
from certplane.agent.discovery.model import CertReference, ListenAddress, ParseError, VirtualServer

# --- syntax ------------------------------------------------------------------------------------


def test_backslash_continues_a_line_and_keeps_the_first_line_number():
    text = "A 1\nServerAlias a.test \\\n    b.test \\\n    c.test\nB 2\r\nC 3 \\\\\nD\n"
    assert list(logical_lines(text)) == [
        (1, "A 1"),
        (2, "ServerAlias a.test     b.test     c.test"),
        (5, "B 2"),
        (6, "C 3 \\\\"),
        (7, "D"),
        (8, ""),
    ]


def test_continuation_at_end_of_file():
    assert list(logical_lines("A \\")) == [(1, "A ")]


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("SSLCertificateFile   /a/b.pem  ", ["SSLCertificateFile", "/a/b.pem"]),
        ('Header set X "a b  c"', ["Header", "set", "X", "a b  c"]),
        ("Y 'single quoted' z", ["Y", "single quoted", "z"]),
        (r'Q "say \"hi\"" \n', ["Q", 'say "hi"', r"\n"]),
        ('U "unterminated rest', ["U", "unterminated rest"]),
        ('E ""', ["E", ""]),
    ],
)
def test_words(text, words):
    assert split_words(text) == words


def test_sections_nest_and_match_case_insensitively():
    text = (
        "# comment\n"
        "  # indented comment\n"
        "<IfModule mod_ssl.c>\n"
        "  <virtualhost *:443 [::1]:443>\n"
        "    ServerName a.test\n"
        "  </VirtualHost>\n"
        "</ifmodule>\n"
    )
    assert parse(text, "/a.conf") == [
        Directive(
            "IfModule",
            ("mod_ssl.c",),
            "/a.conf",
            3,
            (
                Directive(
                    "virtualhost",
                    ("*:443", "[::1]:443"),
                    "/a.conf",
                    4,
                    (Directive("ServerName", ("a.test",), "/a.conf", 5),),
                ),
            ),
        )
    ]


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("<VirtualHost *:443>\nServerName a\n", 1, "<VirtualHost> was not closed"),
        ("</VirtualHost>\n", 1, "</VirtualHost> without matching <VirtualHost> section"),
        ("<IfModule x>\n</VirtualHost>\n", 2, "expected </IfModule> but saw </VirtualHost>"),
        ("\n<VirtualHost *:443\n", 2, "<VirtualHost> directive missing closing '>'"),
        ("<>\n", 1, "empty section name"),
    ],
)
def test_malformed_sections_raise_with_line(text, line, message):
    with pytest.raises(ConfigSyntaxError) as caught:
        parse(text, "/f")
    assert (caught.value.line, caught.value.message) == (line, message)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("*:443", ("*", 443)),
        ("_default_:443", ("_default_", 443)),
        ("192.0.2.1:8443", ("192.0.2.1", 8443)),
        ("[2001:db8::1]:443", ("2001:db8::1", 443)),
        ("[::1]", ("::1", None)),
        ("*", ("*", None)),
        ("*:*", ("*", None)),
        ("443", ("*", 443)),
    ],
)
def test_addresses(spec, expected):
    assert split_address(spec) == expected


# --- reading a configuration -------------------------------------------------------------------


def write(root: Path, files: dict[str, str]) -> HostRoot:
    for name, text in files.items():
        path = root / name.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return HostRoot(root)


def test_virtual_hosts_includes_and_inheritance(tmp_path):
    host = write(
        tmp_path,
        {
            "/etc/httpd/conf/httpd.conf": (
                'ServerRoot "/etc/httpd"\n'
                "Listen 80\n"
                "Listen 192.0.2.1:8443 https\n"
                "Listen [::]:443\n"
                "include conf.d/*.conf\n"
                "IncludeOptional conf.modules.d/*.conf\n"
                "IncludeOptional sites\n"
                "SSLCertificateChainFile certs/chain.pem\n"
                "SSLEngine on\n"
            ),
            "/etc/httpd/conf.d/ssl.conf": (
                "<VirtualHost *:443>\n"
                "  ServerName first.test\n"
                "  ServerName https://a.test:443\n"
                "  ServerAlias b.test c.test\n"
                "  ServerAlias *.a.test\n"
                "  SSLCertificateFile /etc/pki/a.crt\n"
                "  SSLCertificateKeyFile ${KEYS}/a.key\n"
                "</VirtualHost>\n"
            ),
            "/etc/httpd/sites/one/x.conf": (
                "<VirtualHost [::1]:8443>\n  SSLEngine off\n"
                "  SSLCertificateFile x.crt\n</VirtualHost>\n"
            ),
            "/etc/httpd/sites/.skipped.conf": "<VirtualHost\n",
        },
    )
    config = read_apache_config(host, "/etc/httpd/conf/httpd.conf")
    main, ssl_conf, x_conf = (
        "/etc/httpd/conf/httpd.conf",
        "/etc/httpd/conf.d/ssl.conf",
        "/etc/httpd/sites/one/x.conf",
    )
    assert config.files == (main, ssl_conf, x_conf)
    assert config.errors == ()
    assert config.listen == (
        ListenAddress("*", 80, False, False, main, 2),
        ListenAddress("192.0.2.1", 8443, True, False, main, 3),
        ListenAddress("::", 443, True, False, main, 4),
    )
    chain = CertReference(
        "SSLCertificateChainFile", "chain", "certs/chain.pem", "/etc/httpd/certs/chain.pem", main, 8
    )
    assert config.servers == (
        VirtualServer(
            software="apache",
            file=ssl_conf,
            line=1,
            server_names=("https://a.test:443", "b.test", "c.test", "*.a.test"),
            listen=(ListenAddress("*", 443, True, False, ssl_conf, 1),),
            tls=True,
            references=(
                CertReference(
                    "SSLCertificateFile",
                    "certificate",
                    "/etc/pki/a.crt",
                    "/etc/pki/a.crt",
                    ssl_conf,
                    6,
                ),
                CertReference(
                    "SSLCertificateKeyFile",
                    "key",
                    "${KEYS}/a.key",
                    None,
                    ssl_conf,
                    7,
                    "contains a variable",
                ),
                chain,
            ),
        ),
        VirtualServer(
            software="apache",
            file=x_conf,
            line=1,
            server_names=(),
            listen=(ListenAddress("::1", 8443, False, False, x_conf, 1),),
            tls=False,
            references=(
                # SSLEngine off: the server-level chain is not inherited; its own file is kept
                CertReference(
                    "SSLCertificateFile", "certificate", "x.crt", "/etc/httpd/x.crt", x_conf, 3
                ),
            ),
        ),
    )


def test_problems_are_recorded_not_raised(tmp_path):
    host = write(
        tmp_path,
        {
            "/etc/apache2/apache2.conf": (
                "Include missing.conf\n"
                "Include conf-enabled/*.conf\n"
                "IncludeOptional optional-missing.conf\n"
                "Include broken.conf\n"
                "Include self.conf\n"
                "Include\n"
                "<VirtualHost *:443>\n"
                "  <VirtualHost *:8443>\n"
                "  </VirtualHost>\n"
                "  ServerName ok.test\n"
                "</VirtualHost>\n"
            ),
            "/etc/apache2/broken.conf": "<VirtualHost *:443>\n",
            "/etc/apache2/self.conf": "Include self.conf\n",
        },
    )
    config = read_apache_config(host)
    main = "/etc/apache2/apache2.conf"
    assert config.errors == (
        ParseError("apache", main, 1, "Include missing.conf: not found"),
        ParseError("apache", main, 2, "Include conf-enabled/*.conf: no file matches"),
        ParseError("apache", "/etc/apache2/broken.conf", 1, "<VirtualHost> was not closed"),
        ParseError(
            "apache",
            "/etc/apache2/self.conf",
            1,
            "include cycle: /etc/apache2/self.conf includes itself",
        ),
        ParseError("apache", main, 6, "Include takes one path"),
        ParseError("apache", main, 8, "<VirtualHost> inside <VirtualHost>"),
    )
    assert [s.server_names for s in config.servers] == [("ok.test",)]
