"""A locked-down bus: one NATS user per service, each allowed only the subjects it needs.

The allow lists are derived from the subjects, streams and buckets declared in `subjects`, so
they cannot drift from what the services use. `authorization()` renders them as a
nats-server `authorization { users = [...] }` block (with bcrypt hashes, never a password);
`cs config nats-users` writes that block and one credentials file per service.

What each role may do, in words:
- provisioner: consume its clouds' intents, write VM states and capacity, publish VM events,
  answer instance listings. Not: touch cloud records, publish intents, call the admin API.
- planner: read demand/pool/clouds/capacity, write VM records and cloud health, publish
  intents, condor actions and its plan report.
- poller: publish demand and pool snapshots, consume condor actions, report them done.
- admin: everything the admin service does: cloud records, kills and drains (VM records,
  intents, condor actions), answering `cs.admin.*`, asking provisioners for listings.
- operator: the `cs` CLI with the right to change things (`cs.admin.*`), and `cs trace`.
- viewer: the `cs` CLI read-only: `cs status`, `cs vm list`, `cs cloud show`, `cs services`.
Every role may create the streams and buckets (idempotent set-up at start) and read them.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass

import bcrypt

from bus import subjects
from providers.table import programs

ROLES = ("admin", "planner", "poller", "provisioner", "operator", "viewer")
"""Every role, in the order `cs config nats-users` writes them."""

SERVICE_ROLES = {
    "cs-admin": "admin",
    "cs-planner": "planner",
    "cs-poller": "poller",
    **{program: "provisioner" for program in programs()},
}
"""The role each service's user gets (a provisioner per provider in the table)."""

_JS = "$JS.API"
_ALL_STREAMS = (subjects.INTENT_STREAM, subjects.CONDOR_STREAM, subjects.SNAPSHOT_STREAM,
                subjects.HISTORY_STREAM)
_ALL_BUCKETS = (subjects.CLOUDS_BUCKET, subjects.VMS_BUCKET, subjects.HEALTH_BUCKET,
                subjects.CAPACITY_BUCKET, subjects.SERVICES_BUCKET)


@dataclass(frozen=True)
class Role:
    """The subjects one NATS user may publish to and subscribe to."""

    publish: tuple[str, ...]
    subscribe: tuple[str, ...]


def _kv_stream(bucket: str) -> str:
    return f"KV_{bucket}"


def _setup() -> list[str]:
    """Create (never update or delete) our streams and buckets, and look them up."""
    names = [*_ALL_STREAMS, *map(_kv_stream, _ALL_BUCKETS)]
    return [f"{_JS}.INFO", *(f"{_JS}.STREAM.INFO.{n}" for n in names),
            *(f"{_JS}.STREAM.CREATE.{n}" for n in names)]


def _read_kv(*buckets: str) -> list[str]:
    """Get keys and snapshot/watch a bucket (ordered consumers with flow control)."""
    out: list[str] = []
    for bucket in buckets:
        stream = _kv_stream(bucket)
        out += [f"{_JS}.DIRECT.GET.{stream}.>", f"{_JS}.STREAM.MSG.GET.{stream}",
                f"{_JS}.CONSUMER.CREATE.{stream}", f"{_JS}.CONSUMER.CREATE.{stream}.>",
                f"{_JS}.CONSUMER.DELETE.{stream}.>", f"{_JS}.CONSUMER.INFO.{stream}.>"]
    return out


def _write_kv(*buckets: str) -> list[str]:
    return [subjects.kv_changes(b) for b in buckets]


def _read_snapshots() -> list[str]:
    stream = subjects.SNAPSHOT_STREAM
    return [f"{_JS}.DIRECT.GET.{stream}.>", f"{_JS}.STREAM.MSG.GET.{stream}",
            f"{_JS}.CONSUMER.CREATE.{stream}", f"{_JS}.CONSUMER.CREATE.{stream}.>",
            f"{_JS}.CONSUMER.DELETE.{stream}.>"]


def _read_history() -> list[str]:
    """Read the history stream from a time on (an ephemeral pull consumer)."""
    stream = subjects.HISTORY_STREAM
    return [f"{_JS}.CONSUMER.CREATE.{stream}", f"{_JS}.CONSUMER.CREATE.{stream}.>",
            f"{_JS}.CONSUMER.DELETE.{stream}.>", f"{_JS}.CONSUMER.INFO.{stream}.>",
            f"{_JS}.CONSUMER.MSG.NEXT.{stream}.>"]


def _work_queue(stream: str, durable: str) -> list[str]:
    """Bind to, pull from and acknowledge a durable consumer of a work-queue stream
    (`durable` "*": any of the stream's; NATS wildcards are whole tokens)."""
    return [f"{_JS}.CONSUMER.CREATE.{stream}.{durable}",
            f"{_JS}.CONSUMER.CREATE.{stream}.{durable}.>",
            f"{_JS}.CONSUMER.DURABLE.CREATE.{stream}.{durable}",
            f"{_JS}.CONSUMER.INFO.{stream}.{durable}",
            f"{_JS}.CONSUMER.MSG.NEXT.{stream}.{durable}",
            f"$JS.ACK.{stream}.{durable}.>"]


def roles() -> dict[str, Role]:
    """Every role's allow lists."""
    # Every service reports itself (heartbeat with its bus problems) in the services bucket.
    common_pub = [*_setup(), subjects.deadletter(), "$JS.FC.>",
                  *_write_kv(subjects.SERVICES_BUCKET)]
    # Replies to requests (KV reads, JetStream API answers, $SRV pings) come to inboxes.
    common_sub = ["_INBOX.>"]
    micro = ["$SRV.>"]  # a service on the NATS services API answers PING/INFO/STATS here
    provider_intents = _work_queue(subjects.INTENT_STREAM, "*")
    provider_sub = [f"{subjects.ROOT}.provider.>", *micro]
    return {
        "provisioner": Role(
            publish=(*common_pub, *provider_intents, *_read_kv(*_ALL_BUCKETS),
                     *_write_kv(subjects.VMS_BUCKET, subjects.CAPACITY_BUCKET),
                     f"{subjects.ROOT}.vm.>"),
            subscribe=(*common_sub, *provider_sub)),
        "planner": Role(
            publish=(*common_pub, *_read_kv(*_ALL_BUCKETS), *_read_snapshots(),
                     *_write_kv(subjects.VMS_BUCKET, subjects.HEALTH_BUCKET),
                     subjects.intents_all(), subjects.condor_action(), subjects.plan_report()),
            # Follows the demand and pool snapshots as published; the buckets' changes come
            # by watches, delivered to its inbox.
            subscribe=(*common_sub, subjects.demand(), subjects.pool())),
        "poller": Role(
            publish=(*common_pub, *_read_kv(*_ALL_BUCKETS), subjects.demand(),
                     subjects.pool(), subjects.condor_done(),
                     *_work_queue(subjects.CONDOR_STREAM, subjects.CONDOR_DURABLE)),
            subscribe=tuple(common_sub)),
        "admin": Role(
            publish=(*common_pub, *_read_kv(*_ALL_BUCKETS), *_read_snapshots(),
                     *_write_kv(subjects.CLOUDS_BUCKET, subjects.VMS_BUCKET),
                     subjects.intents_all(), subjects.condor_action(),
                     subjects.history(), *_read_history(),
                     f"{subjects.ROOT}.provider.*.{subjects.PROVIDER_INSTANCES}"),
            subscribe=(*common_sub, f"{subjects.ADMIN_GROUP}.>", *micro)),
        "operator": Role(
            publish=(f"{subjects.ADMIN_GROUP}.>", subjects.SERVICE_INFO,
                     f"{subjects.SERVICE_INFO}.>",
                     f"{subjects.ROOT}.provider.*.{subjects.PROVIDER_INSTANCES}"),
            subscribe=(*common_sub, subjects.everything())),
        "viewer": Role(
            publish=(subjects.admin_endpoint(subjects.ADMIN_STATUS),
                     subjects.admin_endpoint(subjects.ADMIN_HISTORY),
                     subjects.admin_endpoint(subjects.ADMIN_VM_LIST), subjects.SERVICE_INFO,
                     f"{subjects.SERVICE_INFO}.>",
                     f"{subjects.ROOT}.provider.*.{subjects.PROVIDER_INSTANCES}"),
            subscribe=tuple(common_sub)),
    }


BCRYPT_ROUNDS = 11
"""bcrypt's cost for the passwords in nats-server's config: nats-server's own tool's default
(about 0.1 s of the server's time per connection, once per connection)."""


def hashed(password: str) -> str:
    """`password`'s bcrypt hash as nats-server reads it (a `$2a$` hash: the server checks
    the password a client presents against it; the config holds no password)."""
    salt = bcrypt.gensalt(rounds=BCRYPT_ROUNDS, prefix=b"2a")
    return bcrypt.hashpw(password.encode(), salt).decode()


def authorization(users: Mapping[str, tuple[str, str]]) -> str:
    """A nats-server `authorization` block: `users` maps user name -> (password, role);
    the block holds each password's bcrypt hash, not the password. Replies to requests a
    user serves are allowed (allow_responses)."""
    table = roles()
    entries = []
    for user, (password, role) in users.items():
        allowed = table[role]
        entries.append("    " + json.dumps({
            "user": user, "password": hashed(password),
            "permissions": {"publish": {"allow": list(allowed.publish)},
                            "subscribe": {"allow": list(allowed.subscribe)},
                            "allow_responses": True}}))
    return "authorization {\n  users = [\n" + "\n".join(entries) + "\n  ]\n}\n"


def users() -> dict[str, str]:
    """user name -> role: one user per service, plus the CLI's operator and viewer."""
    return {**SERVICE_ROLES, "operator": "operator", "viewer": "viewer"}


def with_credentials(url: str, user: str, password: str) -> str:
    """`url` (comma-separated for a cluster) with `user:password@` in every server URL."""
    out = []
    for one in url.split(","):
        scheme, sep, rest = one.strip().partition("://")
        if not sep:
            scheme, rest = "nats", scheme
        out.append(f"{scheme}://{user}:{password}@{rest.rsplit('@', 1)[-1]}")
    return ",".join(out)


def generate(url: str) -> tuple[str, dict[str, str]]:
    """A fresh set of users with random passwords: the nats-server authorization block and,
    per user, the CS_NATS_URL it connects with."""
    table = {user: (secrets.token_urlsafe(24), role) for user, role in users().items()}
    return authorization(table), {user: with_credentials(url, user, password)
                                  for user, (password, _) in table.items()}
