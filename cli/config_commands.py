"""`cs config`: check, import from v1, lock the bus down, reload."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

import siteconfig
from bus import calls
from bus.client import AdminClient
from bus.errors import ConfigError
from bus.link import redacted
from bus.schemas import ConfigReloadRequest
from cli.common import JsonOption, NatsOption, err, fail, out, print_json, with_bus
from siteconfig.textfile import read_text

config_app = typer.Typer(help="Check, reload and import the site configuration.",
                         no_args_is_help=True)


@config_app.command("check")
def config_check(
    config: Annotated[Path | None, typer.Option(help="Site config [default: $CS_CONFIG].")] = None,
) -> None:
    """Validate the site config without touching the bus; say what it defines."""
    from cli.offline import check_config

    try:
        site = siteconfig.load(siteconfig.config_path(str(config) if config else None))
        check_config(site)
    except ConfigError as exc:
        raise fail(str(exc)) from None
    out.print(escape(f"{site.path}: ok: site {site.site}, NATS {redacted(site.nats_url)}, "
                     f"{len(site.clouds)} cloud(s): " + ", ".join(
                         f"{c.name} ({c.provider}, {'enabled' if c.enabled else 'disabled'} "
                         "at first start)" for c in site.clouds)), soft_wrap=True)


@config_app.command("import-v1")
def config_import_v1(
    resources: Annotated[Path, typer.Argument(help="v1's cloud_resources.conf")],
    scheduler: Annotated[Path | None, typer.Argument(help="v1's cloud_scheduler.conf")] = None,
    site: Annotated[str, typer.Option(help="Installation id for the new config.")] = "imported",
    out_path: Annotated[Path, typer.Option("--out", help="The site config to write.")] = Path(
        "cloudscheduler.toml"),
    clouds_yaml: Annotated[Path, typer.Option(
        help="Where the OpenStack credentials go (mode 600).")] = Path("clouds.yaml"),
    force: Annotated[bool, typer.Option(help="Overwrite existing files.")] = False,
) -> None:
    """Convert a v1 configuration; every key not carried over is listed with the reason."""
    from cli.importv1 import convert

    for target in (out_path, clouds_yaml):
        if target.exists() and not force:
            raise fail(f"{target} exists; pass --force to overwrite it")
    try:
        imported = convert(
            read_text(resources, "a v1 cloud_resources.conf"), str(resources),
            read_text(scheduler, "a v1 cloud_scheduler.conf") if scheduler else "",
            str(scheduler or ""), site)
    except ConfigError as exc:
        raise fail(str(exc)) from None
    out_path.write_text(imported.toml)
    clouds_yaml.touch(mode=0o600)
    clouds_yaml.chmod(0o600)
    clouds_yaml.write_text(json.dumps(imported.clouds_yaml, indent=2) + "\n")
    for line in imported.unmapped:
        err.print(escape(line), highlight=False, soft_wrap=True)
    try:
        loaded = siteconfig.load(out_path)
    except ConfigError as exc:  # a bug of the converter: say so rather than leave it
        raise fail(f"the converted config does not load: {exc}") from None
    out.print(escape(f"wrote {out_path} ({len(loaded.clouds)} cloud(s)) and {clouds_yaml}; "
                     f"{len(imported.unmapped)} key(s) not imported (listed above); point "
                     f"[provisioner] clouds_yaml at {clouds_yaml}"), soft_wrap=True)


@config_app.command("nats-users")
def config_nats_users(
    out_dir: Annotated[Path, typer.Argument(help="Directory for the files (created, mode 700).")],
    url: Annotated[str, typer.Option(
        help="The NATS URL(s) the services and the CLI connect to.")] = "nats://127.0.0.1:4222",
    force: Annotated[bool, typer.Option(help="Overwrite existing files.")] = False,
) -> None:
    """Lock the bus down: a nats-server `authorization` block with one user per service (each
    allowed only its own subjects) plus `operator` and `viewer` for the CLI, and one
    `<user>.env` file each with its CS_NATS_URL. Passwords are random; files are mode 600."""
    from bus.permissions import generate

    auth_path = out_dir / "auth.conf"
    if auth_path.exists() and not force:
        raise fail(f"{auth_path} exists; pass --force to make new passwords for everyone")
    block, urls = generate(url)
    out_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    for path, text in [(auth_path, block), *(
            (out_dir / f"{user}.env", f"CS_NATS_URL={user_url}\n")
            for user, user_url in urls.items())]:
        path.touch(mode=0o600)
        path.chmod(0o600)
        path.write_text(text)
    out.print(escape(
        f"wrote {auth_path} (include it in nats-server's config: include \"auth.conf\") and "
        f"{len(urls)} credential files: {', '.join(f'{u}.env' for u in urls)}; give each "
        "service its own (supervisord: environment=, systemd: EnvironmentFile=)"),
        soft_wrap=True)


@config_app.command("reload")
def config_reload(nats: NatsOption = None, as_json: JsonOption = False) -> None:
    """Have the admin service re-read its config file: clouds added or changed take effect
    (enabled flags set with `cs cloud enable/disable` are kept)."""
    reply = with_bus(nats, lambda bus: AdminClient(bus).call(calls.CONFIG_RELOAD,
                                                             ConfigReloadRequest()))
    if as_json:
        print_json(reply.model_dump(mode="json"))
        return
    out.print(escape(f"{reply.path}: reloaded; clouds added: {', '.join(reply.added) or '-'}; "
                     f"changed: {', '.join(reply.refreshed) or '-'}; unchanged: "
                     f"{len(reply.unchanged)}"), soft_wrap=True)
    if reply.not_in_config:
        err.print(escape("in the registry but not in the file (left as they are): "
                         + ", ".join(reply.not_in_config)), highlight=False)
