"""The Docker SDK behind asyncio, with its errors in the kubelet's words (docker.py's plumbing).

Every call of the SDK's APIClient is a blocking HTTP request over the
daemon's unix socket, so `call()` runs it in a worker thread
(asyncio.to_thread) and translates what can go wrong:

    SDK exception                       kubelet error (kubelet/errors.py)
    ---------------------------------   -----------------------------------------------
    docker.errors.NotFound (404)        NotFoundError   (ImagePullError for a pull)
    docker.errors.APIError (4xx, 5xx)   the `error` asked for (ImagePullError,
                                        ContainerStartError), else ContainerRuntimeError
    connection refused, no socket       ContainerRuntimeError("Cannot connect to the
    (requests / DockerException)        Docker daemon at unix://... Is the docker
                                        daemon running?") -- Docker's own words

The API version is pinned to 1.41 (dockerd 20.10, the oldest supported):
without it the SDK asks the daemon for its version when the client is
built, which fails while dockerd is down -- and the kubelet must be able to
start first and report the runtime as not ready.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, ParamSpec, TypeVar

from kubelet.errors import ContainerRuntimeError, ImagePullError, NotFoundError

DEFAULT_ENDPOINT = "unix:///var/run/docker.sock"
API_VERSION = "1.41"  # dockerd 20.10
T = TypeVar("T")
P = ParamSpec("P")


def base_url(endpoint: str) -> str:
    """`/var/run/docker.sock` or `unix:///var/run/docker.sock` -> the SDK's base_url."""
    return f"unix://{endpoint}" if endpoint.startswith("/") else endpoint


def new_api_client(endpoint: str, timeout: float) -> Any:
    """The SDK's low-level client; it connects on its first request."""
    import docker

    return docker.APIClient(base_url=base_url(endpoint), version=API_VERSION, timeout=int(timeout))


def unreachable(endpoint: str, err: BaseException) -> str:
    return (
        f"Cannot connect to the Docker daemon at {base_url(endpoint)}. "
        f"Is the docker daemon running? ({type(err).__name__})"
    )


def explain(err: BaseException) -> str:
    """The daemon's message (the SDK keeps it as `explanation`)."""
    return str(getattr(err, "explanation", None) or err)


async def call(
    endpoint: str,
    what: str,
    error: type[ContainerRuntimeError] | None,
    fn: Callable[P, T],
    *args: P.args,
    **kwargs: P.kwargs,
) -> T:
    """`fn(*args, **kwargs)` in a thread; SDK exceptions become the kubelet's (table above).

    `error` is the class an APIError becomes (ImagePullError for a pull), None for the default.
    """
    import docker.errors
    import requests.exceptions

    try:
        return await asyncio.to_thread(fn, *args, **kwargs)
    except docker.errors.NotFound as err:
        if error is ImagePullError:
            raise ImagePullError(f"{what}: {explain(err)}") from None
        raise NotFoundError(f"{what}: {explain(err)}") from None
    except docker.errors.APIError as err:
        raise (error or ContainerRuntimeError)(f"{what}: {explain(err)}") from None
    except (docker.errors.DockerException, requests.exceptions.RequestException) as err:
        raise ContainerRuntimeError(f"{what}: {unreachable(endpoint, err)}") from None


def reraise(err: BaseException) -> NoReturn:
    """Raise `err` again (inside `call`, so it is translated like any other)."""
    raise err


def image_ref(attrs: dict[str, Any]) -> str:
    """An image's reference for imageID: its first repo digest, else its id."""
    digests = attrs.get("RepoDigests") or []
    return str(digests[0] if digests else attrs.get("Id", ""))


def symlink(link: Path, target: str) -> None:
    """`ln -sf target link`, making the link's directory."""
    link.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        link.unlink()
    link.symlink_to(target)
