"""keepalived.conf's block structure, and the errors of an unbalanced one."""

from __future__ import annotations

import pytest

from halo_tool_convert.lexer import ConvertError
from halo_tool_convert.parser import Node, parse_text


def tree(nodes: list[Node]) -> list[object]:
    return [
        (n.keyword, n.args) if n.block is None else (n.keyword, n.args, tree(n.block))
        for n in nodes
    ]


def test_blocks_over_any_number_of_lines() -> None:
    text = """
vrrp_instance VI_1
{
    virtual_ipaddress { 192.0.2.1
        192.0.2.2 }
    authentication {
        auth_type PASS
    } track_script { chk }
}
"""
    parsed = parse_text(text, config_id="x")
    assert tree(parsed.nodes) == [
        (
            "vrrp_instance",
            ["VI_1"],
            [
                ("virtual_ipaddress", [], [("192.0.2.1", []), ("192.0.2.2", [])]),
                ("authentication", [], [("auth_type", ["PASS"])]),
                ("track_script", [], [("chk", [])]),
            ],
        )
    ]
    assert parsed.nodes[0].loc.line == 2


def test_comments_go_with_their_statement() -> None:
    text = "# about the instance\nvrrp_instance VI_1 { # trailing\n  # before the end\n}\n# last\n"
    parsed = parse_text(text, config_id="x")
    node = parsed.nodes[0]
    assert node.comments == ["about the instance"]
    assert node.trailing == "trailing"
    assert node.end_comments == ["before the end"]
    assert parsed.end_comments == ["last"]


def test_quoted_arguments_are_kept_for_scripts() -> None:
    node = parse_text('notify_master "/bin/a b" root\n', config_id="x").nodes[0]
    assert node.args == ["/bin/a b", "root"]
    assert node.quoted_args() == ["/bin/a b", "root"]


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("a {\n}\n}\n", "k.conf:3: unexpected '}' (no block is open)"),
        ("a {\n b {\n}\n", "k.conf:1: '{' of 'a' is never closed (a '}' is missing)"),
        (
            "a {\n b {\n c {\n}\n",
            "k.conf:1: '{' of 'a' is never closed (a '}' is missing;"
            " the innermost open block is at k.conf:2)",
        ),
        ("{\n}\n", "k.conf:1: unexpected '{' (it follows no keyword)"),
        ("a { } {\n}\n", "k.conf:1: unexpected '{' (it follows no keyword)"),
    ],
)
def test_unbalanced_braces(text: str, error: str) -> None:
    with pytest.raises(ConvertError) as exc:
        parse_text(text, "k.conf", config_id="x")
    assert exc.value.lines == [error]
