"""Where the backup lives: a plain git URL or a forge (``github``, ``codeberg``, ``gitea``, ``gitlab``)
plus owner/repo, and the username each forge expects with a token as the password.

Conventions (common, not verified against every forge's docs, so always overridable with ``username``):
GitHub takes any non-empty name with a PAT (``x-access-token`` for app tokens); GitLab ``oauth2`` for
OAuth tokens and any name with a PAT; Gitea, Forgejo and Codeberg the account name.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from ..errors import UsageError

__all__ = ["PROVIDERS", "Remote", "resolve_remote"]

#: provider → (default host, default username; None means "the owner")
PROVIDERS: dict[str, tuple[str | None, str | None]] = {
    "github": ("github.com", "x-access-token"),
    "codeberg": ("codeberg.org", None),
    "gitea": (None, None),
    "gitlab": ("gitlab.com", "oauth2"),
}


@dataclass(frozen=True)
class Remote:
    url: str
    username: str
    branch: str = "main"

    @property
    def display(self) -> str:
        return self.url


def _local_path(url: str) -> bool:
    """Whether git reads ``url`` as a path on this machine rather than an scp-like ``host:path`` (git's own
    rule: a colon before the first slash means ssh), so a relative one can be made absolute."""
    if "://" in url:
        return False
    if os.name == "nt" and re.match(r"^[A-Za-z]:[\\/]", url):
        return True
    colon, slash = url.find(":"), url.find("/")
    return colon < 0 or 0 <= slash < colon


def _clean_url(url: str) -> tuple[str, str | None]:
    """(URL without userinfo, the username that was in it). A password in the URL is refused. A local path
    is made absolute: git runs in the clone, where a relative path would point elsewhere."""
    if _local_path(url):
        return os.path.abspath(os.path.expanduser(url)), None
    if "://" not in url:
        return url, None  # an scp-like ssh address
    parts = urlsplit(url)
    if parts.password is not None:
        raise UsageError(
            "the sync URL contains a password or token; remove it",
            hint="put the token in VEXRUN_GIT_TOKEN (it is passed to git through the environment only)",
        )
    user = parts.username
    if user is None:
        return url, None
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment)), user


def resolve_remote(
    *,
    url: str | None = None,
    provider: str | None = None,
    owner: str | None = None,
    repo: str | None = None,
    host: str | None = None,
    username: str | None = None,
    branch: str = "main",
) -> Remote:
    """The remote from a URL or a provider + owner/repo."""
    if url:
        clean, url_user = _clean_url(url)
        return Remote(clean, username or url_user or "x-access-token", branch)
    if not provider:
        raise UsageError("no sync remote: give a URL, or a provider with owner and repo")
    if provider not in PROVIDERS:
        raise UsageError(f"unknown provider {provider!r} (one of {', '.join(PROVIDERS)}, or give a URL)")
    if not owner or not repo:
        raise UsageError(f"provider {provider} needs owner and repo")
    default_host, default_user = PROVIDERS[provider]
    host = host or default_host
    if not host:
        raise UsageError(f"provider {provider} needs host (your server's name)")
    name = repo if repo.endswith(".git") else repo + ".git"
    return Remote(f"https://{host}/{owner}/{name}", username or default_user or owner, branch)
