"""keepalived.conf's language below the keywords: comments, quoting, braces, includes and
the advanced syntax of keepalived.conf(5) (conditional lines, parameters, ~SEQ, ~LST)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from halo_tool_convert.lexer import (
    ConvertError,
    Loc,
    Preprocessor,
    decomment,
    expand_braces,
    quoted_words,
    split_braces,
    words,
)


def lines(text: str, config_id: str | None = "node", directory: str = ".") -> list[str]:
    pre = Preprocessor(config_id)
    return [ln.text for ln in pre.read_text(text, "k.conf", directory)]


L = Loc("k.conf", 1)

# ------------------------------------------------------------------------------ characters


@pytest.mark.parametrize(
    ("raw", "code", "comment"),
    [
        ("priority 100 # the master", "priority 100", "the master"),
        ("  priority 100 ! the master", "priority 100", "the master"),
        ("! Configuration File for keepalived", "", "Configuration File for keepalived"),
        ('script "/bin/echo # not a comment"', 'script "/bin/echo # not a comment"', None),
        ("auth_pass a\\#b", "auth_pass a#b", None),
        ("auth_pass a\\!b", "auth_pass a!b", None),
        ('x "a\\"#b"', 'x "a\\"#b"', None),
        ("$X=a \\", "$X=a\\", None),
        ("\tvirtual_ipaddress {\t", "virtual_ipaddress {", None),
    ],
)
def test_decomment(raw: str, code: str, comment: str | None) -> None:
    assert decomment(raw, L) == (code, comment)


def test_unterminated_quote_is_an_error() -> None:
    with pytest.raises(ConvertError) as exc:
        decomment('script "/bin/true', Loc("k.conf", 7))
    assert exc.value.lines == ['k.conf:7: unterminated quoted string (a " without its closing ")']


def test_words_as_keepalived_splits_most_keywords() -> None:
    assert words('notification_email_from "a b"  c') == ["notification_email_from", "a b", "c"]
    assert words("auth_pass 'x y'") == ["auth_pass", "'x", "y'"]  # single quotes are literal
    assert words('a"b c"') == ["a", "b c"]


def test_quoted_words_as_keepalived_splits_scripts() -> None:
    # keepalived.conf(5)'s examples
    assert quoted_words('abcd" efg h jkl "mnop') == ["abcd efg h jkl mnop"]
    assert quoted_words('abcd "efg h jkl" mnop') == ["abcd", "efg h jkl", "mnop"]
    assert quoted_words(r"a\tb \x41\101 \cA 'it''s' \"q\" \\") == [
        "a\tb",
        "AA",
        "\x01",
        "its",
        '"q"',
        "\\",
    ]
    assert quoted_words("'unclosed") is None
    assert quoted_words("trailing\\") is None


def test_braces_split_a_line_but_not_a_quoted_string() -> None:
    assert split_braces("virtual_ipaddress { 192.0.2.1 }") == [
        "virtual_ipaddress",
        "{",
        "192.0.2.1",
        "}",
    ]
    assert split_braces('script "a{b}"') == ['script "a{b}"']
    assert split_braces("}}") == ["}", "}"]


def test_brace_alternatives() -> None:
    assert expand_braces("a{b,c{d,e}}f") == ["abf", "acdf", "acef"]
    assert expand_braces("{foo/{,cat,dog},bar}") == ["foo/", "foo/cat", "foo/dog", "bar"]
    assert expand_braces("no{brace}") == ["no{brace}"]
    assert expand_braces("x{y") == ["x{y"]


# ------------------------------------------------------------------------------ includes


def test_include_globs_relative_to_the_including_file(tmp_path: Path) -> None:
    (tmp_path / "conf.d" / "sub").mkdir(parents=True)
    (tmp_path / "main.conf").write_text("a 1\ninclude conf.d/*.conf\nz 26\n")
    (tmp_path / "conf.d" / "20-b.conf").write_text("b 2\ninclude sub/x.conf\n")
    (tmp_path / "conf.d" / "10-a.conf").write_text("a2 1\n")
    (tmp_path / "conf.d" / "sub" / "x.conf").write_text("x 24 # from sub\n")
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        pre = Preprocessor("node")
        got = [(ln.text, str(ln.loc)) for ln in pre.read_file("main.conf")]
    finally:
        os.chdir(cwd)
    assert got == [
        ("a 1", "main.conf:1"),
        ("a2 1", "conf.d/10-a.conf:1"),
        ("b 2", "conf.d/20-b.conf:1"),
        ("x 24", "conf.d/sub/x.conf:1"),
        ("z 26", "main.conf:3"),
    ]


def test_include_alternatives_and_variants(tmp_path: Path) -> None:
    (tmp_path / "a.conf").write_text("a 1\n")
    (tmp_path / "b.conf").write_text("b 1\n")
    assert lines("include {a,b}.conf", directory=str(tmp_path)) == ["a 1", "b 1"]
    pre = Preprocessor("node")
    pre.read_text("include none*.conf\n", "k.conf", str(tmp_path))
    assert pre.notes == [(Loc("k.conf", 1), "include", "none*.conf matches no file")]
    with pytest.raises(ConvertError, match=r"k.conf:1: include none\*.conf: matches no file"):
        lines("includea none*.conf", directory=str(tmp_path))
    with pytest.raises(ConvertError, match=r"k.conf:2: include missing.conf: no such file"):
        lines("a 1\ninclude missing.conf", directory=str(tmp_path))


def test_include_loop_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "a.conf").write_text("include b.conf\n")
    (tmp_path / "b.conf").write_text("x 1\ninclude a.conf\n")
    with pytest.raises(ConvertError) as exc:
        Preprocessor("node").read_file(str(tmp_path / "a.conf"))
    assert exc.value.lines == [
        f"{tmp_path}/b.conf:2: include loop: {tmp_path}/a.conf includes itself"
    ]


def test_include_comment_goes_with_what_it_includes(tmp_path: Path) -> None:
    (tmp_path / "a.conf").write_text("a 1\n")
    pre = Preprocessor("node")
    got = pre.read_text("include a.conf   # the a part\n", "k.conf", str(tmp_path))
    assert got[0].comments == ["include a.conf (line 1): the a part"]


# ------------------------------------------------------------------------------ @conditional


def test_conditional_lines() -> None:
    text = "@main router_id main\n@backup router_id backup\n@^main peer x\nplain 1\n@main\n"
    assert lines(text, "main") == ["router_id main", "plain 1"]
    assert lines(text, "backup") == ["router_id backup", "peer x", "plain 1"]
    assert lines(text, None) == ["peer x", "plain 1"]


# ------------------------------------------------------------------------------ parameters


def test_definitions_and_substitution() -> None:
    text = (
        "$IF=eth0\n"
        "interface $IF\n"
        "interface ${IF}.10\n"
        "interface $IFx\n"  # not followed by a blank: not a reference
        "script ${UNDEF} $UNDEF\n"  # undefined: left as written
        "list a,$IF,b\n"
    )
    assert lines(text) == [
        "interface eth0",
        "interface eth0.10",
        "interface $IFx",
        "script ${UNDEF} $UNDEF",
        "list a,eth0,b",
    ]


def test_substitution_is_recursive_and_at_use_time() -> None:
    # keepalived.conf(5)'s example
    text = (
        "$ADDRESS_BASE=10.2.${ADDRESS_BASE_SUB}\n"
        "$ADDRESS_BASE_SUB=0\n"
        "${ADDRESS_BASE}.100/32\n"
        "$ADDRESS_BASE_SUB=10\n"
        "${ADDRESS_BASE}.100/32\n"
    )
    assert lines(text) == ["10.2.0.100/32", "10.2.10.100/32"]


def test_conditional_definitions() -> None:
    text = (
        "@main $PRIORITY=240\n@backup $PRIORITY=200\npriority $PRIORITY\n"
        "$IF_MAIN=@main\n$IF_MAIN x 1\n"
    )
    assert lines(text, "main") == ["priority 240", "x 1"]
    assert lines(text, "backup") == ["priority 200"]


def test_multiline_definitions() -> None:
    text = (
        "$INSTANCE= \\\n"
        "vrrp_instance VI_${NUM} { \\\n"
        "    interface eth0.${NUM} \\\n"
        "    @high priority 130 \\\n"
        "    @low priority 120 \\\n"
        "}\n"
        "\n"
        "$NUM=0\n"
        "$INSTANCE\n"
        "$NUM=1\n"
        "$INSTANCE\n"
    )
    assert lines(text, "high") == [
        "vrrp_instance VI_0 {",
        "interface eth0.0",
        "priority 130",
        "}",
        "vrrp_instance VI_1 {",
        "interface eth0.1",
        "priority 130",
        "}",
    ]
    # a multi-line value only replaces a reference that ends the line
    assert lines("$M= \\\na\\\nb\n\nx $M y\n") == ["x $M y"]


def test_predefined_parameters(tmp_path: Path) -> None:
    got = lines("a ${_HASH}1 ${_BANG}\nb ${_INSTANCE}\nc ${_PWD}\n", "main", str(tmp_path))
    assert got == ["a #1 !", "b main", f"c {tmp_path}"]
    n = int(lines("r ${_RANDOM 5 9}")[0].split()[1])
    assert 5 <= n <= 9
    pre = Preprocessor("x")
    pre.read_text("r ${_RANDOM}\n", "k.conf")
    assert pre.notes[0][1] == "${_RANDOM}"


def test_endless_substitution_is_an_error() -> None:
    with pytest.raises(ConvertError, match=r"k.conf:2: parameter substitution"):
        lines("$A=x $A \ny $A\n")


# ------------------------------------------------------------------------------ ~SEQ / ~LST


def test_seq() -> None:
    assert lines("~SEQ(SUBNET, 0, 3) ip_address 10.0.${SUBNET}.1") == [
        f"ip_address 10.0.{i}.1" for i in range(4)
    ]
    want = [f"ip_address fe80::20:{h}:1" for h in ("90", "a0", "b0", "c0")]
    assert lines("~SEQx(SUBNET, 144, 16, 192) ip_address fe80::20:${SUBNET}:1") == want
    assert lines("~SEQx(S, 0x90, 0x10, 0xc0) ip_address fe80::20:${S}:1") == want
    assert lines("~SEQ(N, 3) n $N") == ["n 1", "n 2", "n 3"]
    assert lines("~SEQ(N, 3, 1) n $N") == ["n 3", "n 2", "n 1"]
    assert lines("~SEQ(N, -2) n $N") == ["n -1", "n -2"]


def test_several_seq_on_one_line() -> None:
    got = lines("~SEQx(AD2, 0x90, 0x10, 0xc0) ~SEQx(AD1, 0x12, -1, 0x0c) fe81::10:${AD2}:${AD1}")
    assert len(got) == 4 * 7
    assert got[:2] == ["fe81::10:90:12", "fe81::10:90:11"]
    assert got[-1] == "fe81::10:c0:c"


def test_seq_with_a_multiline_definition() -> None:
    text = "$VI= \\\nvi ${IF}.${ID} { \\\n}\n\n~SEQ(IF,0,1) ~SEQ(ID,1,2) $VI\n"
    assert lines(text) == ["vi 0.1 {", "}", "vi 0.2 {", "}", "vi 1.1 {", "}", "vi 1.2 {", "}"]


def test_lst() -> None:
    assert lines("~LST({IP, IP1}, {10,1},{20,4},{5,6},{12,8}) 192.168.${IP}.${IP1}") == [
        "192.168.10.1",
        "192.168.20.4",
        "192.168.5.6",
        "192.168.12.8",
    ]
    nested = lines("~LST(IP, 1, 2, 3, 4) ~LST(IP1, 5,6,7) 192.169.${IP}.${IP1}")
    assert nested[:4] == ["192.169.1.5", "192.169.1.6", "192.169.1.7", "192.169.2.5"]
    assert len(nested) == 12
    mixed = lines("~LST({IP, IP1}, {10,1},{20,4}) ~SEQ(IP2,168,2,172) 192.${IP2}.${IP}.${IP1}")
    assert mixed == [
        "192.168.10.1",
        "192.170.10.1",
        "192.172.10.1",
        "192.168.20.4",
        "192.170.20.4",
        "192.172.20.4",
    ]
    assert lines("~LST({A, B}, {1}) x${A}y${B}z") == ["x1yz"]  # missing values are empty


@pytest.mark.parametrize(
    "spec",
    [
        "~SEQ(N, 1, 0, 5) x",
        "~SEQ(N, 5, 1, 1) x",
        "~SEQ(, 1) x",
        "~SEQ(N, a) x",
        "~SEQ N x",
        "~SEQx(N, -1, 3) x",
        "~LST(N) x",
        "~LST({A}, {1, 2}) x",
        "~LST(N, 1",
        "~SEQ(N, 1, 1000000) x",
    ],
)
def test_bad_sequences_are_errors(spec: str) -> None:
    with pytest.raises(ConvertError, match=r"^k.conf:1: "):
        lines(spec)
