"""The shell's line editing: readline history and Tab completion of remote
and local paths, as a mixin of the Shell (which provides remote_paths,
local_dirs, history and out)."""

from __future__ import annotations

import os
from types import ModuleType
from typing import Callable, List, Optional, Sequence

from ftpd.ftpc.completion import DELIMS, local_paths, matches, split_partial

readline: Optional[ModuleType]
try:
    import readline
except ImportError:        # a Python built without readline: no completion, no history
    readline = None

HISTORY_LENGTH = 1000


class LineEditing:
    # Provided by the Shell and FolderCommands (annotations only: no
    # attribute here may shadow theirs in the method resolution order).
    history: str
    out: Callable[[str], None]
    remote_paths: Callable[..., List[str]]
    local_dirs: Callable[[str], List[str]]

    # -- history -------------------------------------------------------------------------

    def preloop(self) -> None:
        if readline is not None:
            readline.set_completer_delims(DELIMS)
            if "libedit" in (readline.__doc__ or ""):     # macOS: cmd's "tab: complete" is
                readline.parse_and_bind("bind ^I rl_complete")   # GNU syntax only

    def load_history(self) -> None:
        if readline is not None and os.path.exists(self.history):
            try:
                readline.read_history_file(self.history)
            except OSError:
                pass
        if readline is not None:
            readline.set_history_length(HISTORY_LENGTH)

    def save_history(self) -> None:
        if readline is not None:
            try:
                readline.write_history_file(self.history)
            except OSError as exc:
                self.out(f"(history not saved: {exc.strerror})")

    # -- completion -----------------------------------------------------------------------

    def _complete(self, line: str, begidx: int, endidx: int,
                  sources: Sequence[Callable[[str], List[str]]]) -> List[str]:
        partial = split_partial(line[:endidx])
        if partial.value.startswith("-"):
            return []
        position = len([w for w in partial.words[1:] if not w.startswith("-")])
        source = sources[min(position, len(sources) - 1)]
        return matches(partial, source(partial.value), begidx, line[:endidx])

    def complete_get(self, text: str, line: str, begidx: int, endidx: int) -> List[str]:
        return self._complete(line, begidx, endidx, (self.remote_paths, local_paths))

    def complete_put(self, text: str, line: str, begidx: int, endidx: int) -> List[str]:
        return self._complete(line, begidx, endidx, (local_paths, self.remote_paths))

    def complete_lcd(self, text: str, line: str, begidx: int, endidx: int) -> List[str]:
        return self._complete(line, begidx, endidx, (self.local_dirs,))

    def complete_cd(self, text: str, line: str, begidx: int, endidx: int) -> List[str]:
        return self._complete(line, begidx, endidx,
                              (lambda prefix: self.remote_paths(prefix, dirs_only=True),))

    def complete_remote(self, text: str, line: str, begidx: int, endidx: int) -> List[str]:
        return self._complete(line, begidx, endidx, (self.remote_paths,))

    complete_hash = complete_ls = complete_rm = complete_mv = complete_mget = complete_remote
    complete_rmdir = complete_cd

    def complete_mput(self, text: str, line: str, begidx: int, endidx: int) -> List[str]:
        return self._complete(line, begidx, endidx, (local_paths,))
