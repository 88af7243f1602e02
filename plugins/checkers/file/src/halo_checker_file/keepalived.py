"""keepalived's ``FILE_CHECK`` checker block, for ``halo convert`` (imported only by the
``halo_convert_keepalived`` hook): ``track_file NAME`` names a top-level ``track_file``
block, whose ``file`` becomes the check's. Weight 0 is up or down; another weight (the
track_file's, 1 unless given, or the FILE_CHECK's own) becomes ``weight_factor``: the value
times it is added to the real server's weight, as keepalived does."""

from __future__ import annotations

from halo_tool_convert.api import (
    CheckCtx,
    CheckDefaults,
    CheckerSpec,
    Converter,
    Keyword,
    Node,
    U,
    checker,
)


def c_track_file(conv: Converter, node: Node, c: CheckCtx) -> None:
    name = conv.one(node)
    if name is None:
        return
    tf = conv.track_files.get(name)
    if tf is None or tf.file is None:
        conv.error(node.loc, f"no track_file {name} with a file")
        return
    conv.put(c.m, node, "file", tf.file)
    c.m.set("_weight", tf.weight, loc=node.loc)
    if tf.reverse:
        c.m.set("reverse", True, loc=node.loc)


def c_weight(conv: Converter, node: Node, c: CheckCtx) -> None:
    if not node.args:
        conv.error(node.loc, "weight needs a value")
        return
    weight = conv.integer(node, -2147483647, 2147483647, node.args[0])
    if weight is None:
        return
    c.m.set("_weight", weight, loc=node.loc)
    if node.args[1:] == ["reverse"]:
        c.m.set("reverse", True, loc=node.loc)
    elif node.args[1:]:
        conv.error(node.loc, f"weight: unexpected {' '.join(node.args[1:])!r}")


def finish(conv: Converter, node: Node, c: CheckCtx, _: CheckDefaults) -> bool:
    weight = c.m.get("_weight")
    c.m.remove("_weight")
    if "file" not in c.m:
        conv.error(node.loc, "FILE_CHECK has no track_file")
        return False
    if isinstance(weight, int) and weight != 0:
        c.m.set("weight_factor", weight, loc=node.loc)
    return True


FILE_CHECK = CheckerSpec(
    "FILE_CHECK",
    "file",
    {
        "track_file": c_track_file,
        "weight": c_weight,
        "dynamic": U("keepalived 2.2.7 does not know it (later versions add it to the quorum)"),
    },
    retry=0,
    timeout=lambda m, eff, ctx: None,
    finish=finish,
)


def keywords() -> list[Keyword]:
    return [checker(FILE_CHECK)]
