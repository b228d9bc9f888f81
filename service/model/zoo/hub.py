"""A file of a Hugging Face model repository, through ``huggingface_hub`` into its standard cache (``HF_HOME`` /
``HF_HUB_CACHE``, default ``~/.cache/huggingface/hub``).

huggingface_hub asks the endpoint for ``{repo_id}/resolve/{revision}/{filename}`` (HEAD: the commit, ETag and size;
then GET), shows its progress bar on stderr, resumes a transfer that breaks off with ``Range`` requests within the
call, and answers from its cache when the file is there (also offline). Since 2.x it keeps no partial file across
calls: a pull stopped by the user starts the Hub file over.
"""

from __future__ import annotations

from pathlib import Path

import httpx

from service.model.zoo.catalogue import Hub
from service.model.zoo.fetch import Refused, Unreachable


def download(source: Hub, endpoint: str, cache_dir: Path | None = None) -> Path:
    """The local path of ``source`` (a file in huggingface_hub's cache, ``cache_dir`` or its default), downloaded
    from ``endpoint`` when not cached. Raises ``Unreachable`` when the endpoint cannot be reached and the file is
    not cached, and ``Refused`` when the Hub says no (no such repository, revision or file; an HTTP error)."""
    import httpx2  # huggingface_hub 2.x's HTTP client: its transport errors come through hf_hub_download
    from huggingface_hub import hf_hub_download, try_to_load_from_cache
    from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, LocalEntryNotFoundError

    url = source.url(endpoint)
    if not isinstance(try_to_load_from_cache(source.repo_id, source.filename, cache_dir, source.revision), str):
        _reachable(url)
    try:
        path = hf_hub_download(
            source.repo_id, source.filename, revision=source.revision, endpoint=endpoint, cache_dir=cache_dir
        )
    except LocalEntryNotFoundError as exc:  # no connection, and nothing cached (a subclass of the next)
        raise Unreachable(url, _first_line(exc)) from exc
    except (EntryNotFoundError, HfHubHTTPError) as exc:
        raise Refused(f"{url}: {_first_line(exc)}") from exc
    except httpx2.HTTPError as exc:  # the transfer itself failed after huggingface_hub's retries
        raise Unreachable(url, f"{type(exc).__name__}: {exc}") from exc
    return Path(path)


def _reachable(url: str) -> None:
    """Raise ``Unreachable`` at once when ``url``'s host takes no connection: huggingface_hub would retry with
    back-off for about 25 s before saying so. Any answer, even an error status, is left to huggingface_hub."""
    try:
        httpx.head(url, timeout=10.0)
    except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
        raise Unreachable(url, f"{type(exc).__name__}: {exc}") from exc
    except httpx.HTTPError:
        pass


def discard(path: Path) -> None:
    """Remove a file fetched into huggingface_hub's cache: the snapshot's link and the blob it points to, so a
    rejected file is not answered from the cache again."""
    blob = path.resolve()
    path.unlink(missing_ok=True)
    blob.unlink(missing_ok=True)


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
