"""nginx: the tokenizer, the block parser, includes and the TLS settings of server blocks."""

from __future__ import annotations

from pathlib import Path

import pytest

from certplane.agent.discovery import HostRoot, read_nginx_config
from certplane.agent.discovery.configtree import ConfigSyntaxError, Directive
from certplane.agent.discovery.model import CertReference, ListenAddress, ParseError
from certplane.agent.discovery.nginx import split_listen
from certplane.agent.discovery.nginx_syntax import Token, TokenKind, parse, tokenize

W, SEMI, OPEN, CLOSE = TokenKind.WORD, TokenKind.SEMICOLON, TokenKind.OPEN, TokenKind.CLOSE


def kinds_and_values(text: str) -> list[tuple[TokenKind, str]]:
    return [(t.kind, t.value) for t in tokenize(text)]


# --- tokenizer ---------------------------------------------------------------------------------


def test_words_punctuation_and_lines():
    assert tokenize("a b;\nc {\n  d;\n}\n") == [
        Token(W, "a", 1),
        Token(W, "b", 1),
        Token(SEMI, ";", 1),
        Token(W, "c", 2),
        Token(OPEN, "{", 2),
        Token(W, "d", 3),
        Token(SEMI, ";", 3),
        Token(CLOSE, "}", 4),
    ]


def test_comments_start_only_at_a_token_start():
    text = "# whole line\nreturn 200 a#b; # trailing ; { }\n"
    assert kinds_and_values(text) == [(W, "return"), (W, "200"), (W, "a#b"), (SEMI, ";")]


def test_quoted_strings_keep_specials_and_span_lines():
    tokens = tokenize('return 200 "a; {b} # c\nd";\n')
    assert tokens[2] == Token(W, "a; {b} # c\nd", 1, quoted=True)
    assert tokens[3] == Token(SEMI, ";", 2)
    # nginx requires a space after a closing quote: 'it''s' is an error
    with pytest.raises(ConfigSyntaxError) as caught:
        tokenize("x 'it''s';")
    assert caught.value.line == 1


@pytest.mark.parametrize(
    ("text", "value"),
    [
        (r'"say \"hi\""', 'say "hi"'),
        (r"'it\'s'", "it's"),
        (r'"back\\slash"', "back\\slash"),
        (r'"tab\there"', "tab\there"),
        (r'"nl\nx"', "nl\nx"),
        (r'"keep\dthis"', r"keep\dthis"),
        (r"unquoted\;semi", r"unquoted\;semi"),
        (r"esc\ aped", r"esc\ aped"),
        (r"~^(www\.)?example\.test$", r"~^(www\.)?example\.test$"),
    ],
)
def test_escapes(text, value):
    assert tokenize(text + ";")[0].value == value


def test_escaped_space_and_semicolon_do_not_end_a_word():
    assert kinds_and_values(r"a\ b\;c;") == [(W, r"a\ b\;c"), (SEMI, ";")]


def test_variable_braces_stay_in_the_word():
    assert kinds_and_values("root /srv/${host}/x;") == [
        (W, "root"),
        (W, "/srv/${host}/x"),
        (SEMI, ";"),
    ]


def test_a_brace_ends_an_unquoted_word():
    assert kinds_and_values("location /{ }") == [
        (W, "location"),
        (W, "/"),
        (OPEN, "{"),
        (CLOSE, "}"),
    ]


def test_unterminated_quote_is_reported_at_its_start():
    with pytest.raises(ConfigSyntaxError) as caught:
        tokenize('a;\nb "never closed;\n\n')
    assert (caught.value.line, caught.value.message) == (2, 'unexpected end of file, expecting "')


# --- parser ------------------------------------------------------------------------------------


def test_nested_blocks():
    text = (
        "events { worker_connections 1; }\n"
        "http {\n  server {\n    location / { return 204; }\n  }\n}\n"
    )
    tree = parse(text, "/n.conf")
    assert tree == [
        Directive(
            "events", (), "/n.conf", 1, (Directive("worker_connections", ("1",), "/n.conf", 1),)
        ),
        Directive(
            "http",
            (),
            "/n.conf",
            2,
            (
                Directive(
                    "server",
                    (),
                    "/n.conf",
                    3,
                    (
                        Directive(
                            "location",
                            ("/",),
                            "/n.conf",
                            4,
                            (Directive("return", ("204",), "/n.conf", 4),),
                        ),
                    ),
                ),
            ),
        ),
    ]


def test_empty_block_differs_from_a_simple_directive():
    assert parse("a {}\nb;", "/f") == [Directive("a", (), "/f", 1, ()), Directive("b", (), "/f", 2)]


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("http {\n  server {\n", 3, 'unexpected end of file, expecting "}"'),
        ("http {\n  server {", 2, 'unexpected end of file, expecting "}"'),
        ("user nginx", 1, 'unexpected end of file, expecting ";" or "}"'),
        ("a;\n}\n", 2, 'unexpected "}"'),
        ("a {\n b }\n", 2, 'unexpected "}"'),
        ("a;\n;\n", 2, 'unexpected ";"'),
        ("{ a; }", 1, 'unexpected "{"'),
    ],
)
def test_malformed_configurations_raise_with_line(text, line, message):
    with pytest.raises(ConfigSyntaxError) as caught:
        parse(text, "/f")
    assert (caught.value.line, caught.value.message) == (line, message)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("443", ("*", 443)),
        ("*:443", ("*", 443)),
        ("127.0.0.1:8443", ("127.0.0.1", 8443)),
        ("[::]:443", ("::", 443)),
        ("[::1]", ("::1", 80)),
        ("localhost", ("localhost", 80)),
        ("unix:/run/nginx.sock", ("unix:/run/nginx.sock", None)),
        ("*:99999", ("*", None)),
    ],
)
def test_listen_addresses(spec, expected):
    assert split_listen(spec) == expected


# --- reading a configuration -------------------------------------------------------------------


def write(root: Path, files: dict[str, str]) -> HostRoot:
    for name, text in files.items():
        path = root / name.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return HostRoot(root)


def test_includes_globs_inheritance_and_relative_paths(tmp_path):
    host = write(
        tmp_path,
        {
            "/etc/nginx/nginx.conf": (
                "http {\n"
                "    ssl_certificate_key keys/default.key;\n"
                "    include conf.d/*.conf;\n"
                "    include /etc/nginx/extra/one;\n"
                "}\n"
            ),
            "/etc/nginx/conf.d/b.conf": "server { listen 443 ssl; ssl_certificate ../b.pem; }\n",
            "/etc/nginx/conf.d/a.conf": (
                "server {\n    listen 8443;\n    ssl on;\n"
                "    server_name a.test\n        www.a.test;\n"
                "    server_name alias.a.test;\n    ssl_certificate /certs/a.pem;\n"
                "    ssl_certificate /certs/a-rsa.pem;\n    ssl_certificate_key /keys/a.key;\n}\n"
            ),
            "/etc/nginx/conf.d/.hidden.conf": "this would not parse {",
            "/etc/nginx/extra/one": "server { server_name plain.test; }\n",
        },
    )
    config = read_nginx_config(host)
    assert config.files == (
        "/etc/nginx/nginx.conf",
        "/etc/nginx/conf.d/a.conf",
        "/etc/nginx/conf.d/b.conf",
        "/etc/nginx/extra/one",
    )
    assert config.errors == ()
    a, b, plain = config.servers
    assert a.server_names == ("a.test", "www.a.test", "alias.a.test")
    assert a.listen == (ListenAddress("*", 8443, True, False, "/etc/nginx/conf.d/a.conf", 2),)
    assert a.tls
    assert a.references == (
        CertReference(
            "ssl_certificate",
            "certificate",
            "/certs/a.pem",
            "/certs/a.pem",
            "/etc/nginx/conf.d/a.conf",
            7,
        ),
        CertReference(
            "ssl_certificate",
            "certificate",
            "/certs/a-rsa.pem",
            "/certs/a-rsa.pem",
            "/etc/nginx/conf.d/a.conf",
            8,
        ),
        CertReference(
            "ssl_certificate_key",
            "key",
            "/keys/a.key",
            "/keys/a.key",
            "/etc/nginx/conf.d/a.conf",
            9,
        ),
    )
    assert b.references == (
        CertReference(
            "ssl_certificate",
            "certificate",
            "../b.pem",
            "/etc/b.pem",
            "/etc/nginx/conf.d/b.conf",
            1,
        ),
        CertReference(
            "ssl_certificate_key",
            "key",
            "keys/default.key",
            "/etc/nginx/keys/default.key",
            "/etc/nginx/nginx.conf",
            2,
        ),
    )
    assert plain.listen == (ListenAddress("*", 80, False, False, "/etc/nginx/extra/one", 1),)
    assert not plain.tls


def test_variables_and_inline_data_are_unresolvable(tmp_path):
    host = write(
        tmp_path,
        {
            "/etc/nginx/nginx.conf": (
                "stream { server { listen 853 ssl;\n"
                "ssl_certificate /certs/$ssl_server_name.pem;\n"
                "ssl_certificate_key data:$key_pem; } }\n"
            ),
        },
    )
    (server,) = read_nginx_config(host).servers
    assert [(r.path, r.unresolved) for r in server.references] == [
        (None, "contains a variable"),
        (None, "contains a variable"),
    ]


def test_errors_are_recorded_and_other_files_still_read(tmp_path):
    host = write(
        tmp_path,
        {
            "/etc/nginx/nginx.conf": (
                "http {\n  include missing.conf;\n  include broken.conf;\n  include loop.conf;\n"
                "  include ok.conf;\n  include a b;\n}\n"
            ),
            "/etc/nginx/broken.conf": "server {\n  listen 443 ssl;\n",
            "/etc/nginx/loop.conf": "include loop.conf;\n",
            "/etc/nginx/ok.conf": "server { server_name ok.test; }\n",
        },
    )
    config = read_nginx_config(host)
    assert config.errors == (
        ParseError(
            "nginx", "/etc/nginx/nginx.conf", 2, "cannot open /etc/nginx/missing.conf: not found"
        ),
        ParseError("nginx", "/etc/nginx/broken.conf", 3, 'unexpected end of file, expecting "}"'),
        ParseError(
            "nginx",
            "/etc/nginx/loop.conf",
            1,
            "include cycle: /etc/nginx/loop.conf includes itself",
        ),
        ParseError("nginx", "/etc/nginx/nginx.conf", 6, "include takes one argument"),
    )
    assert [s.server_names for s in config.servers] == [("ok.test",)]


def test_a_malformed_main_file_gives_an_empty_configuration(tmp_path):
    host = write(tmp_path, {"/etc/nginx/nginx.conf": "http {\n  server { listen 443 ssl; }\n"})
    config = read_nginx_config(host)
    assert config.servers == ()
    assert config.errors == (
        ParseError("nginx", "/etc/nginx/nginx.conf", 3, 'unexpected end of file, expecting "}"'),
    )


def test_prefix_can_differ_from_the_main_files_directory(tmp_path):
    host = write(
        tmp_path,
        {
            "/opt/conf/nginx.conf": "http { include sites/*; }\n",
            "/srv/nginx/sites/x": "server { listen 443 ssl; ssl_certificate x.pem; }\n",
        },
    )
    config = read_nginx_config(host, "/opt/conf/nginx.conf", prefix="/srv/nginx")
    assert config.servers[0].references[0].path == "/srv/nginx/x.pem"
