"""keepalived's virtual servers, for ``halo convert`` (imported only by the
``halo_convert_keepalived`` hook): the converter writes each one into ``virtual_servers``;
this plugin adds the ipvs backend that puts them in the kernel."""

from __future__ import annotations

from halo_tool_convert.api import Converter, Finish, Node, VsState, YMap


def backend(conv: Converter, node: Node, vs: VsState) -> None:
    """The ipvs backend that runs keepalived's virtual servers, made at the first one (with
    global_defs' lvs_flush_on_stop, which the converter has read)."""
    if conv.ipvs_backend is not None:
        return
    conv.ipvs_backend = YMap()
    conv.ipvs_backend.set("type", "ipvs", loc=node.loc)
    if conv.ipvs_flush is not None:
        n = conv.ipvs_flush
        conv.ipvs_backend.set(
            "flush_on_stop", True, loc=n.loc, trailing=f"{n.line} ({conv.at(n.loc)})"
        )
    conv.section_map("backends").set(
        "ipvs", conv.ipvs_backend, loc=node.loc, comments=["keepalived's virtual servers"]
    )


def keywords() -> list[Finish]:
    return [Finish("virtual_server", backend)]
