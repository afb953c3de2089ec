"""``mailsink mailhog``: the sink started with MailHog's own flags, for drop-in use.

``MailHog -smtp-bind-addr :1025 -invite-jim`` becomes ``mailsink mailhog
-smtp-bind-addr :1025 -invite-jim``: the same flag names, with one or two dashes
and ``-flag value`` or ``-flag=value``, as Go's flag package takes them. Each
flag is read as the MH_* variable of the same meaning (the flag wins over the
variable), so both go through one mapping (``settings.mailhog_env_settings``);
the MailHog preset is always on.
"""
from __future__ import annotations

import argparse
import os
from typing import Any

from . import settings as settings_module

# MailHog flag → the MH_* variable that means the same.
FLAG_ENV = {
    "smtp-bind-addr": "MH_SMTP_BIND_ADDR",
    "api-bind-addr": "MH_API_BIND_ADDR",
    "ui-bind-addr": "MH_UI_BIND_ADDR",
    "hostname": "MH_HOSTNAME",
    "storage": "MH_STORAGE",
    "maildir-path": "MH_MAILDIR_PATH",
    "mongo-uri": "MH_MONGO_URI",
    "mongo-db": "MH_MONGO_DB",
    "mongo-coll": "MH_MONGO_COLLECTION",
    "cors-origin": "MH_CORS_ORIGIN",
    "outgoing-smtp": "MH_OUTGOING_SMTP",
    "ui-web-path": "MH_UI_WEB_PATH",
    "auth-file": "MH_AUTH_FILE",
    "invite-jim": "MH_INVITE_JIM",
}

# Jim's flags have no MH_* variable; they are our settings of the same name.
JIM_FLAGS = ("jim-disconnect", "jim-accept", "jim-linkspeed-affect", "jim-linkspeed-min",
             "jim-linkspeed-max", "jim-reject-sender", "jim-reject-recipient", "jim-reject-auth")


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "mailhog", allow_abbrev=False,
        help="run the sink with MailHog's flags (-smtp-bind-addr, -invite-jim, ...)",
        description="Run the sink as a drop-in for MailHog: MailHog's flags and MH_* "
                    "variables, SMTP on 0.0.0.0:1025, HTTP on 0.0.0.0:8025, any AUTH accepted.")
    for flag, env in FLAG_ENV.items():
        if flag == "invite-jim":
            parser.add_argument("-" + flag, "--" + flag, dest=env, nargs="?", const="true",
                                default=None, metavar="BOOL", help=f"as {env}")
        else:
            parser.add_argument("-" + flag, "--" + flag, dest=env, default=None,
                                metavar="VALUE", help=f"as {env}")
    for flag in JIM_FLAGS:
        option = next(o for o in settings_module.OPTIONS if o.name == flag.replace("-", "_"))
        parser.add_argument("-" + flag, "--" + flag, dest=option.name, default=None,
                            type=settings_module._argparse_type(option), metavar="NUMBER",
                            help=f"Jim: {option.help.removeprefix('Jim: ')}")
    parser.set_defaults(run=run_mailhog)


def run_mailhog(args: argparse.Namespace) -> int:
    from .cli import run_serve

    given = vars(args)
    environ = dict(os.environ)
    environ.update({env: given[env] for env in FLAG_ENV.values() if given.get(env) is not None})
    settings_args = {name: value for name, value in given.items()
                     if name.startswith("jim_") and value is not None}
    settings_args["mailhog"] = True
    return run_serve(argparse.Namespace(**settings_args), environ=environ)
