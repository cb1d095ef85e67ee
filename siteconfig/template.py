"""User-data templates as the site config holds them: the placeholders a template may use,
and the check that runs when the config is loaded (rendering is the provisioners' business:
`provisioning.userdata`)."""

from __future__ import annotations

import string
from collections.abc import Mapping

from bus.errors import ConfigError

VARIABLES: dict[str, str] = {
    "CENTRAL_MANAGER": "the pool's central manager ([worker] central_manager)",
    "CS_VM_ID": "the VM's id; its startd advertises it so the pool maps back to the registry",
    "CS_SITE": "the installation id",
    "CS_CLOUD": "the cloud's name",
    "CS_VM_TYPE": "the jobs' VMType",
    "CS_INTENT_ID": "the boot intent's id",
    "CS_CORES": "cores of the VM",
    "CS_MEMORY_MB": "memory of the VM in MB",
    "CS_POOL_TOKEN": "the pool credential (IDTOKEN) from [worker] token_file or token_command",
    "CS_SSL_CA": "the site CA's certificate from [worker] ssl_dir, base64",
    "CS_SSL_CERT": "the workers' certificate from [worker] ssl_dir, base64",
    "CS_SSL_KEY": "the workers' private key from [worker] ssl_dir, base64",
}
"""Every placeholder a template may use, with what it becomes."""


def check_template(text: str, where: str, own: Mapping[str, str] | None = None) -> None:
    """Raise ConfigError naming `where` if `text` has a malformed or unknown placeholder;
    `own` are its provider's placeholders."""
    template = string.Template(text)
    if not template.is_valid():
        raise ConfigError(f"{where}: malformed placeholder; write ${{NAME}}, and $$ for a "
                          "literal $")
    known = {**VARIABLES, **(own or {})}
    unknown = sorted(set(template.get_identifiers()) - set(known))
    if unknown:
        raise ConfigError(f"{where}: unknown placeholder(s) {', '.join(unknown)}; known: "
                          f"{', '.join(known)}")
