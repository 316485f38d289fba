"""A session's fair share: the token bucket its transfers pay into and its
account's quota, both fixed at login (anonymous: [access] anonymous_max_rate
or [files] max_rate, no quota). The session calls these hooks; the
mechanisms are in throttle.py and quota.py.
"""

from __future__ import annotations

import os
from typing import Callable, Optional, Sequence, TypeVar

from ftpd.config import Config
from ftpd.server import quota as quota_mod
from ftpd.server.auth import Limits
from ftpd.server.library import Library, LibraryError, PathArg
from ftpd.server.quota import Quota
from ftpd.server.throttle import TokenBucket, bucket_for, effective_rate

T = TypeVar("T")


class Share:
    def __init__(self, settings: Config, limits: Optional[Limits], tree: Optional[Library]):
        own = settings.access.anonymous_max_rate if limits is None else limits.max_rate
        self.rate = effective_rate(own, settings.files.max_rate)
        self.bucket: Optional[TokenBucket] = bucket_for(self.rate)
        self.quota: Optional[Quota] = None
        if limits is not None and tree is not None:
            if limits.quota or limits.max_files:
                self.quota = Quota(tree.dir_fd, limits.quota, limits.max_files)
            else:
                quota_mod.forget(tree.dir_fd)

    # -- rate ------------------------------------------------------------------------

    def send_step(self, step: int) -> int:
        return self.bucket.step(step) if self.bucket else step

    def paid_progress(self, progress: Callable[[int], None], count: int,
                      step: int) -> Callable[[int], None]:
        """Pay for the first step now and wrap `progress` to pay for each
        next one before it is sent: the bytes leave at the rate from the start."""
        if self.bucket is None:
            return progress
        bucket = self.bucket
        bucket.take(min(step, count))

        def paid(sent: int) -> None:
            progress(sent)
            if sent < count:
                bucket.take(min(step, count - sent))
        return paid

    def received(self, count: int) -> None:
        if self.bucket is not None:
            self.bucket.take(count)

    # -- quota -----------------------------------------------------------------------

    def reserve(self, tree: Library, path: PathArg, size: int) -> None:
        """Before `OK ready`: ERR 507 if the upload could pass the quota."""
        if self.quota is not None:
            self.quota.reserve(size, size_at(tree, path))

    def release(self) -> None:
        if self.quota is not None:
            self.quota.release()

    def counted(self, tree: Library, paths: Sequence[PathArg], act: Callable[[], T]) -> T:
        """Run a change of the tree, counting what it did to `paths`."""
        if self.quota is None:
            return act()
        return self.quota.change(lambda: [size_at(tree, path) for path in paths], act)


def size_at(tree: Library, path: PathArg) -> Optional[int]:
    """The size of the regular file at path, None when there is none."""
    try:
        with tree.locate(path) as place:
            return quota_mod.file_size(_lstat(place.parent, place.name))
    except LibraryError:
        return None


def _lstat(parent: int, name: str) -> Optional[os.stat_result]:
    try:
        return os.stat(name, dir_fd=parent, follow_symlinks=False)
    except OSError:
        return None
