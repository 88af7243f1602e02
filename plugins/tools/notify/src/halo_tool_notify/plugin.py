"""The ``halo notify`` command. The notifier machinery loads only when it runs."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from halo_core.hookspecs import hookimpl
from halo_core.plugin_api import add_config_option


@hookimpl
def halo_add_commands(subparsers: argparse._SubParsersAction[Any]) -> None:
    p_notify = subparsers.add_parser(
        "notify",
        help="send a test event through a notifier",
        description="Send one TEST event, a VRRP state change, through the configured"
        " notifier NOTIFIER, whatever its type, wait for the delivery within the"
        " notifier's own timeouts and print whether it was delivered, and if not why; exit 0"
        " delivered, 1 not, 2 unknown name or invalid configuration. Nothing else is started.",
    )
    add_config_option(p_notify)
    p_notify.add_argument(
        "--test",
        metavar="NOTIFIER",
        required=True,
        help="the configured notifier to send the test event through (required)",
    )
    p_notify.add_argument(
        "--instance",
        metavar="NAME",
        default=None,
        help="the VRRP instance the event is about (default: the first configured one)",
    )
    p_notify.add_argument(
        "--state",
        choices=("MASTER", "BACKUP", "FAULT", "STOP"),
        default="MASTER",
        help="the state the instance enters in the test event (default: %(default)s)",
    )
    p_notify.set_defaults(func=_cmd_notify)


def _cmd_notify(args: argparse.Namespace) -> int:
    from halo_core import log as halo_log
    from halo_core.config import load_or_report
    from halo_tool_notify.send import send_test_event

    loaded = load_or_report(args.config, lambda line: print(line, file=sys.stderr))
    if loaded is None:
        return 2
    halo_log.setup("warning", "text")  # the notifier's own warnings say more about a failure
    return send_test_event(*loaded, args.test, instance=args.instance, state=args.state)
